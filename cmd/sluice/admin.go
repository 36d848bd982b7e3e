package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// opsBase is the base URL of the ops listener a client (sluice sale,
// sluice status) talks to: --ops when given, else SLUICE_OPS, else the
// gate's own SLUICE_OPS_LISTEN (as sluice healthcheck reads it, so that a
// shell or unit that sets it for the gate reaches that gate), else the
// gate's default, 127.0.0.1:9464.
func opsBase(fs *flag.FlagSet, ops string) string {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "ops" })
	switch {
	case given:
	case os.Getenv("SLUICE_OPS") != "":
		ops = os.Getenv("SLUICE_OPS")
	case os.Getenv("SLUICE_OPS_LISTEN") != "":
		ops = dialable(os.Getenv("SLUICE_OPS_LISTEN"))
	}
	base := strings.TrimRight(ops, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return base
}

// adminToken is the admin token a client sends: from --admin-token-file
// (fileFlag), else from SLUICE_ADMIN_TOKEN or the file SLUICE_ADMIN_TOKEN_FILE
// names. The flag beats the environment, as everywhere; the two
// variables together are refused, as a gate refuses --admin-token with
// --admin-token-file: which one was meant is not for sluice to guess.
func adminToken(fileFlag string) (string, error) {
	envToken, envFile := os.Getenv("SLUICE_ADMIN_TOKEN"), os.Getenv("SLUICE_ADMIN_TOKEN_FILE")
	switch {
	case fileFlag != "":
		t, err := readTokenFile(fileFlag)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		return t, nil
	case envToken != "" && envFile != "":
		return "", errors.New("SLUICE_ADMIN_TOKEN_FILE and SLUICE_ADMIN_TOKEN both give the admin token: give one")
	case envFile != "":
		t, err := readTokenFile(envFile)
		if err != nil {
			return "", fmt.Errorf("SLUICE_ADMIN_TOKEN_FILE: %w", err)
		}
		return t, nil
	}
	return envToken, nil
}

// checkHelp is the help of every client command's --check: what sluice
// serve --check is to the gate, for the commands that act on one.
const checkHelp = "check the arguments (and the files and environment they name) and exit: 0 and a one-line summary if the command would run with them, else the error; nothing is sent, fetched or written"

// checked prints the one line of a --check that passed.
func checked(stdout io.Writer, what string) error {
	_, err := fmt.Fprintf(stdout, "sluice: %s OK\n", what)
	return err
}
