package peer

// Throughput of one Push of a large blob over loopback, through the
// transports the cluster port can use:
//
//	go test -run='^$' -bench=Push -benchtime=3x ./blobstore/peer/
//
// "local" is the floor: the receiving store ingesting the file with no
// network at all. cpu-ns/B is the CPU both ends spent per byte stored. "h1" is plain HTTP/1.1; "h1-tls" and "h2-tls" use mutual
// TLS 1.3 like the cluster port, the latter with Go's default HTTP/2 flow
// control windows and "h2-tls-wide" with the windows the cluster port uses
// (see cluster.newInternalServer and newPeerClient).

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// wideHTTP2 mirrors the cluster port's HTTP/2 settings.
var wideHTTP2 = &http.HTTP2Config{
	MaxReceiveBufferPerConnection: 32 << 20,
	MaxReceiveBufferPerStream:     8 << 20,
	MaxReadFrameSize:              1 << 20,
}

func BenchmarkPush(b *testing.B) {
	size := int64(100 << 20)
	src, err := blobstore.Open(blobstore.Config{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	random := func() io.Reader { return io.LimitReader(mrand.NewChaCha8([32]byte{9}), size) }
	h := sha256.New()
	if _, err := io.Copy(h, random()); err != nil {
		b.Fatal(err)
	}
	d := digest.NewDigest(digest.SHA256, h)
	if _, err := src.Put(context.Background(), d, random()); err != nil {
		b.Fatal(err)
	}
	cert := benchCert(b)

	for _, tc := range []struct {
		name  string
		tls   bool
		h2    bool
		conf  *http.HTTP2Config
		local bool
		// fanout pushes to this many receivers at once, as a node does to
		// its blob's owners; 0 means 1.
		fanout int
	}{
		{name: "local", local: true},
		{name: "h1"},
		{name: "h1-tls", tls: true},
		{name: "h2-tls", tls: true, h2: true},
		{name: "h2-tls-wide", tls: true, h2: true, conf: wideHTTP2},
		{name: "local-x2", local: true, fanout: 2},
		{name: "h2-tls-x2", tls: true, h2: true, fanout: 2},
		{name: "h2-tls-wide-x2", tls: true, h2: true, conf: wideHTTP2, fanout: 2},
	} {
		b.Run(fmt.Sprintf("%s/%dMiB", tc.name, size>>20), func(b *testing.B) {
			fanout := max(tc.fanout, 1)
			dsts := make([]*blobstore.Store, fanout)
			urls := make([]string, fanout)
			var client *http.Client
			for j := range dsts {
				if dsts[j], err = blobstore.Open(blobstore.Config{Root: b.TempDir()}); err != nil {
					b.Fatal(err)
				}
				if !tc.local {
					urls[j], client = benchServer(b, dsts[j], cert, tc.tls, tc.h2, tc.conf)
				}
			}
			b.SetBytes(size * int64(fanout))
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c0 := processCPU(b)
				var wg sync.WaitGroup
				errs := make([]error, fanout)
				for j := range dsts {
					wg.Go(func() {
						f, err := src.Open(context.Background(), d)
						if err != nil {
							errs[j] = err
							return
						}
						defer f.Close()
						if tc.local {
							_, errs[j] = dsts[j].Put(context.Background(), d, f)
						} else {
							errs[j] = Push(context.Background(), client, urls[j], d, size, f)
						}
					})
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU(b) - c0
				b.StopTimer()
				for _, dst := range dsts {
					if err := dst.Delete(context.Background(), d); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			// Sender and receivers share the process: this is the CPU of
			// both ends, per byte stored.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(size*int64(fanout)*int64(b.N)), "cpu-ns/B")
		})
	}
}

// processCPU returns the user plus system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServer serves a Server for dst on loopback and returns its URL and a
// client for it. With useTLS both sides authenticate with cert (TLS 1.3),
// and h2 enables HTTP/2 on both with conf.
func benchServer(b *testing.B, dst *blobstore.Store, cert tls.Certificate, useTLS, h2 bool, conf *http.HTTP2Config) (string, *http.Client) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	NewServer(dst, nil).Register(mux)
	srv := &http.Server{Handler: mux, HTTP2: conf, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(h2)
	tr := &http.Transport{MaxIdleConnsPerHost: 4, HTTP2: conf, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(!h2)
	tr.Protocols.SetHTTP2(h2)
	scheme := "http"
	if useTLS {
		scheme = "https"
		protos := []string{"http/1.1"}
		if h2 {
			protos = []string{"h2", "http/1.1"}
		}
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAnyClientCert, NextProtos: protos,
		}
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			InsecureSkipVerify: true, NextProtos: protos,
		}
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return scheme + "://" + ln.Addr().String(), &http.Client{Transport: tr}
}

// benchCert returns a self-signed Ed25519 certificate, like the cluster's
// derived ones, valid for server and client authentication.
func benchCert(b *testing.B) tls.Certificate {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}
