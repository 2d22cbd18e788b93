package cluster

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"
)

// keySize is the length of a cluster key in bytes.
const keySize = 32

// HKDF info strings: each derived secret has its own, so knowing one says
// nothing about the others.
const (
	infoGossip = "wharf cluster gossip key v1"
	infoCA     = "wharf cluster CA ed25519 seed v1"
)

// ALPN protocols on the cluster port.
const (
	alpnRaft  = "wharf-raft"
	alpnHTTP2 = "h2"
	alpnHTTP1 = "http/1.1"
)

// The derived CA is identical on every node: fixed subject, serial and
// validity, and an Ed25519 signature, which is deterministic.
var (
	caNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC)
)

// leafValidity is how long a node's own certificate lives; a node makes a
// new one every start.
const leafValidity = 10 * 365 * 24 * time.Hour

// GenerateKey returns a new random cluster key (32 bytes, base64), as
// printed by `wharf keygen`.
func GenerateKey() (string, error) {
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate cluster key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseKey decodes a cluster key made by GenerateKey.
func ParseKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("cluster key is not base64: %w", err)
	}
	if len(b) != keySize {
		return nil, fmt.Errorf("cluster key has %d bytes, want %d (make one with `wharf keygen`)", len(b), keySize)
	}
	return b, nil
}

// security is what a node derives from the cluster key (or loads from
// operator-supplied files): the gossip key and the TLS configurations of
// the cluster port.
type security struct {
	gossipKey []byte
	roots     *x509.CertPool
	cert      tls.Certificate
}

// identity is what goes into a node's own certificate.
type identity struct {
	nodeID string
	host   string // advertised IP or host name
}

// newSecurity builds the node's security material from cfg. Without a key
// and without TLS files it uses a random key: only a lone node runs so,
// and nothing else can talk to it.
func newSecurity(cfg Config, id identity) (*security, error) {
	key, err := clusterKey(cfg.ClusterKey)
	if err != nil {
		return nil, err
	}
	gossipKey, err := hkdf.Key(sha256.New, key, nil, infoGossip, 32)
	if err != nil {
		return nil, fmt.Errorf("derive gossip key: %w", err)
	}
	s := &security{gossipKey: gossipKey}
	if cfg.TLSCertFile != "" {
		err = s.loadFiles(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile)
	} else {
		err = s.deriveCA(key, id)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func clusterKey(s string) ([]byte, error) {
	if s != "" {
		return ParseKey(s)
	}
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate ephemeral cluster key: %w", err)
	}
	return b, nil
}

func (s *security) loadFiles(certFile, keyFile, caFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load cluster TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("read cluster TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("cluster TLS CA file %s holds no PEM certificate", caFile)
	}
	s.cert, s.roots = cert, roots
	return nil
}

// deriveCA derives the cluster CA from key and issues this node's leaf
// certificate under it.
func (s *security) deriveCA(key []byte, id identity) error {
	ca, caKey, err := deriveCA(key)
	if err != nil {
		return err
	}
	leaf, err := issueLeaf(ca, caKey, id)
	if err != nil {
		return err
	}
	s.roots = x509.NewCertPool()
	s.roots.AddCert(ca)
	s.cert = leaf
	return nil
}

// deriveCA returns the cluster CA certificate and its key. Every node with
// the same key gets the same certificate.
func deriveCA(key []byte) (*x509.Certificate, ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, key, nil, infoCA, ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("derive CA key: %w", err)
	}
	caKey := ed25519.NewKeyFromSeed(seed)
	pub := caKey.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wharf cluster CA"},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return ca, caKey, nil
}

// issueLeaf makes a fresh key and a certificate for it, signed by the CA,
// naming the node (URI wharf-node://<id>, CN <id>) and its host.
func issueLeaf(ca *x509.Certificate, caKey ed25519.PrivateKey, id identity) (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.nodeID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{{Scheme: "wharf-node", Host: id.nodeID}},
	}
	if ip := net.ParseIP(id.host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else if id.host != "" {
		tmpl.DNSNames = []string{id.host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create node certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: priv}, nil
}

// serverTLS requires a client certificate chaining to the cluster CA.
func (s *security) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{s.cert},
		ClientAuth:            tls.RequireAnyClientCert,
		NextProtos:            []string{alpnRaft, alpnHTTP2, alpnHTTP1},
		VerifyPeerCertificate: s.verifyChain(x509.ExtKeyUsageClientAuth),
	}
}

// clientTLS verifies the server's chain to the cluster CA. Peers are
// addressed by IP or by names certificates need not carry, so the chain is
// what is checked, not the host name.
func (s *security) clientTLS(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{s.cert},
		NextProtos:            protos,
		InsecureSkipVerify:    true, // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: s.verifyChain(x509.ExtKeyUsageServerAuth),
	}
}

// verifyChain returns a VerifyPeerCertificate that accepts a chain ending
// in the cluster CA.
func (s *security) verifyChain(usage x509.ExtKeyUsage) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, der := range raw {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return fmt.Errorf("parse peer certificate: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: s.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return fmt.Errorf("peer certificate is not from the cluster CA: %w", err)
		}
		return nil
	}
}
