// Command barehttp serves one fixed answer from a bare handler, net/http's
// or fasthttp's: the floors the gate's sold-out path is measured against
// (see bench/).
//
//	barehttp -listen 127.0.0.1:18081 -status 410 -body-file answer.json [-fasthttp]
package main

import (
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address")
	status := flag.Int("status", 410, "status code")
	bodyFile := flag.String("body-file", "", "file holding the body to answer with")
	ctype := flag.String("content-type", "application/problem+json", "Content-Type")
	fast := flag.Bool("fasthttp", false, "serve with fasthttp instead of net/http")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	if *fast {
		srv := &fasthttp.Server{
			NoDefaultServerHeader: true,
			Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.Response.Header.SetContentType(*ctype)
				ctx.Response.Header.Set("Cache-Control", "no-store")
				ctx.SetStatusCode(*status)
				ctx.Response.SetBodyRaw(body)
			},
		}
		log.Fatal(srv.ListenAndServe(*listen))
	}
	log.Fatal(http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{*ctype}
		h["Cache-Control"] = []string{"no-store"}
		w.WriteHeader(*status)
		_, _ = w.Write(body)
	})))
}
