package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds the TLS handshake of an accepted connection, so a
// peer that connects and says nothing holds no goroutine for long.
const handshakeTimeout = 5 * time.Second

// mux serves the cluster port: it terminates mutual TLS on every accepted
// connection and hands it to Raft or to the internal HTTP server by the
// protocol negotiated with ALPN. A connection that fails the handshake
// (no certificate, one from another CA, plain bytes) is closed unread.
type mux struct {
	ln      net.Listener
	tls     *tls.Config
	raft    *connQueue
	http    *connQueue
	logger  *slog.Logger
	closeMu sync.Once
	done    chan struct{}
	wg      sync.WaitGroup
}

func newMux(ln net.Listener, conf *tls.Config, logger *slog.Logger) *mux {
	done := make(chan struct{})
	return &mux{
		ln:     ln,
		tls:    conf,
		raft:   newConnQueue(ln.Addr(), done),
		http:   newConnQueue(ln.Addr(), done),
		logger: logger,
		done:   done,
	}
}

// serve accepts connections until Close.
func (m *mux) serve() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.Warn("accept on cluster port", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m.wg.Add(1)
		go m.dispatch(conn)
	}
}

func (m *mux) start() {
	m.wg.Add(1)
	go m.serve()
}

// dispatch completes the handshake and routes the connection.
func (m *mux) dispatch(raw net.Conn) {
	defer m.wg.Done()
	conn := tls.Server(raw, m.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		m.logger.Debug("refused cluster connection", "remote", raw.RemoteAddr(), "error", err)
		raw.Close()
		return
	}
	q := m.http
	if conn.ConnectionState().NegotiatedProtocol == alpnRaft {
		q = m.raft
	}
	if !q.push(conn) {
		conn.Close()
	}
}

// Close stops accepting and closes the queues; connections already handed
// over belong to their server.
func (m *mux) Close() error {
	var err error
	m.closeMu.Do(func() {
		close(m.done)
		err = m.ln.Close()
		m.wg.Wait()
	})
	return err
}

// connQueue is a net.Listener fed by the mux.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  <-chan struct{}
}

var _ net.Listener = (*connQueue)(nil)

func newConnQueue(addr net.Addr, done <-chan struct{}) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: done}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close is a no-op: the mux owns the queue's life.
func (q *connQueue) Close() error   { return nil }
func (q *connQueue) Addr() net.Addr { return q.addr }

// raftLayer is Raft's stream layer over the mux: it accepts the mux's
// wharf-raft connections and dials peers with TLS and ALPN wharf-raft.
type raftLayer struct {
	*connQueue
	advertise net.Addr
	tls       *tls.Config
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (l *raftLayer) Addr() net.Addr { return l.advertise }

func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.tls}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", addr, err)
	}
	return conn, nil
}

// HTTP/2 tuning of the cluster port, for bulk blob copies and proxied
// uploads between nodes. Go's defaults let a server receive only 1 MiB per
// connection before the sender must wait for a WINDOW_UPDATE: every stream
// of a connection (several blob copies from one peer at once) shares that
// MiB, and on a link with a millisecond of round trip it caps a copy at
// about 1 GB/s. Windows are memory a receiver may have to buffer for a slow
// reader, so they are bounded per stream and per connection: at most
// peerConnWindow per peer connection, whatever the blob sizes.
const (
	peerStreamWindow = 8 << 20
	peerConnWindow   = 32 << 20
	// peerFrameSize is the largest DATA frame a node reads (Go's default
	// too; set for clarity). TLS records stay 16 KiB.
	peerFrameSize = 1 << 20
	// peerBufferSize sizes the HTTP/1.1 fallback's socket buffers (4 KiB by
	// default), which bound each read and write syscall.
	peerBufferSize = 256 << 10
	// peerExpectContinue is how long a push waits for the peer's 100
	// Continue before sending the body anyway. A peer that holds the blob,
	// or is storing it from another sender, answers first, so the body is
	// never sent; a wharf peer that wants it says so at once.
	peerExpectContinue = 5 * time.Second
)

func peerHTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReceiveBufferPerStream:     peerStreamWindow,
		MaxReceiveBufferPerConnection: peerConnWindow,
		MaxReadFrameSize:              peerFrameSize,
	}
}

// newInternalServer returns the HTTP server of the cluster port, speaking
// HTTP/2 and HTTP/1.1 over the mux's TLS connections.
func newInternalServer(h http.Handler, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		HTTP2:             peerHTTP2Config(),
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	return srv
}

// newPeerClient returns the mTLS HTTP client for peers' cluster ports.
func newPeerClient(conf *tls.Config) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       conf,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   handshakeTimeout,
		ExpectContinueTimeout: peerExpectContinue,
		WriteBufferSize:       peerBufferSize,
		ReadBufferSize:        peerBufferSize,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		HTTP2:                 peerHTTP2Config(),
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(true)
	return &http.Client{Transport: tr}
}
