package api

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests and bytes for every route of the public
// listener.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wharf_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by route, method and status code; its _count is the request count.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method", "code"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_http_request_bytes_total",
			Help: "Bytes of request bodies received, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_http_response_bytes_total",
			Help: "Bytes of response bodies sent, by route.",
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wharf_http_requests_in_flight",
			Help: "Requests being served.",
		}),
	}
	reg.MustRegister(m.duration, m.bytesIn, m.bytesOut, m.inFlight)
	return m
}

// instrument wraps h so that each request is timed and its bytes counted
// under the route name that route gives it.
func (m *httpMetrics) instrument(route func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		name := route(r)
		m.inFlight.Inc()
		defer m.inFlight.Dec()

		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(wrapWriter(cw), r)

		m.duration.WithLabelValues(name, r.Method, strconv.Itoa(cw.status)).Observe(time.Since(start).Seconds())
		m.bytesIn.WithLabelValues(name).Add(float64(body.n))
		m.bytesOut.WithLabelValues(name).Add(float64(cw.n))
	})
}

// countingBody counts the bytes a handler reads from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// countingWriter records the status and counts the bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
}

func (w *countingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom keeps the net/http fast path: when the underlying writer can
// take an *os.File (sendfile), it still gets it.
func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += n
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// flushingWriter adds Flush for writers whose underlying writer has it,
// so streaming handlers (Connect) keep working.
type flushingWriter struct{ *countingWriter }

func (w flushingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.wroteHeader = true
		f.Flush()
	}
}

func wrapWriter(cw *countingWriter) http.ResponseWriter {
	if _, ok := cw.ResponseWriter.(http.Flusher); ok {
		return flushingWriter{cw}
	}
	return cw
}
