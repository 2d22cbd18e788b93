package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// services are the Connect clients the pages call: the same services, and
// the same handlers, as the CLI's, reached in-process.
type services struct {
	access  wharfv1connect.AccessServiceClient
	repos   wharfv1connect.RepositoryServiceClient
	images  wharfv1connect.ImageServiceClient
	remotes wharfv1connect.RemoteServiceClient
}

// inProcessBase is the base URL of the in-process clients; no request
// leaves the process.
const inProcessBase = "http://wharf.in-process"

func newServices(handlers map[string]http.Handler) *services {
	mux := http.NewServeMux()
	for prefix, h := range handlers {
		mux.Handle(prefix, h)
	}
	hc := &http.Client{Transport: handlerTransport{mux}}
	opts := []connect.ClientOption{connect.WithProtoJSON()}
	return &services{
		access:  wharfv1connect.NewAccessServiceClient(hc, inProcessBase, opts...),
		repos:   wharfv1connect.NewRepositoryServiceClient(hc, inProcessBase, opts...),
		images:  wharfv1connect.NewImageServiceClient(hc, inProcessBase, opts...),
		remotes: wharfv1connect.NewRemoteServiceClient(hc, inProcessBase, opts...),
	}
}

// caller is whom an in-process call acts for: the browser's address (for
// the API's login throttling) and, when signed in, the session.
type caller struct {
	remoteAddr   string
	forwardedFor string
	user, secret string // empty: anonymous
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// handlerTransport serves a request with a handler, in the same process,
// as the API would over the network: the request carries the browser's
// address and the session as Basic credentials.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c, ok := req.Context().Value(callerKey{}).(caller); ok {
		req.RemoteAddr = c.remoteAddr
		if c.forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", c.forwardedFor)
		}
		if c.user != "" {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.secret)))
		}
	}
	req.RequestURI = req.URL.RequestURI()
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(rec.status) + " " + http.StatusText(rec.status),
		StatusCode:    rec.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()),
		Request:       req,
	}, nil
}

// recorder keeps a handler's response in memory: the unary calls of the
// pages are small.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// clientAddr returns the browser's address as the API sees it.
func clientAddr(r *http.Request) caller {
	return caller{remoteAddr: r.RemoteAddr, forwardedFor: strings.TrimSpace(r.Header.Get("X-Forwarded-For"))}
}
