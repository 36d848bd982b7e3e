package gatetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"sluice/admission"
)

// The public API's document, loaded and validated once per test binary.
var openAPI struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// OpenAPI returns the document the gate serves at GET /openapi.yaml,
// loaded and validated with kin-openapi (the validator under
// oapi-codegen): a document it refuses fails every test that checks an
// answer, as it fails a client generated from it.
func OpenAPI() (*openapi3.T, routers.Router, error) {
	openAPI.once.Do(func() {
		// The pages browsers get are documented as text/html strings;
		// kin-openapi decodes only text/plain as text by itself. Set once,
		// before any check reads it.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.RegisteredBodyDecoder("text/plain"))
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(admission.OpenAPI())
		if err != nil {
			openAPI.err = fmt.Errorf("load openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			openAPI.err = fmt.Errorf("validate openapi.yaml: %w", err)
			return
		}
		// Any host: tests serve the API on loopback ports of their own.
		doc.Servers = nil
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			openAPI.err = fmt.Errorf("route openapi.yaml: %w", err)
			return
		}
		openAPI.doc, openAPI.router = doc, r
	})
	return openAPI.doc, openAPI.router, openAPI.err
}

// errNoRoute says a request is to no operation of the public API (the
// ops listener's admin API and console, or a path the API does not
// have): its answer has nothing to be checked against.
var errNoRoute = errors.New("no operation in openapi.yaml")

// CheckAnswer checks an answer of the public API against the served
// OpenAPI document: its status must be documented for the operation and
// its headers and body must match the schema. Requests to no operation
// of the document (the ops listener, unknown paths) return nil.
func CheckAnswer(req *http.Request, status int, header http.Header, body []byte) error {
	_, router, err := OpenAPI()
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
			return nil
		}
		return fmt.Errorf("%w: %v", errNoRoute, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d, which openapi.yaml does not allow: %w\n%s", req.Method, req.URL.Path, status, err, body)
	}
	return nil
}
