// Command barehttp serves one fixed answer from a bare net/http handler:
// the floor the gate's sold-out path is measured against (see bench/).
//
//	barehttp -listen 127.0.0.1:18081 -status 410 -body-file answer.json
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address")
	status := flag.Int("status", 410, "status code")
	bodyFile := flag.String("body-file", "", "file holding the body to answer with")
	ctype := flag.String("content-type", "application/problem+json", "Content-Type")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{*ctype}
		h["Cache-Control"] = []string{"no-store"}
		w.WriteHeader(*status)
		_, _ = w.Write(body)
	})))
}
