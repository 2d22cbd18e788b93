package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"connectrpc.com/connect"
	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/wharf-registry/wharf/cluster/clusterpb/clusterpbconnect"
)

// startNetwork opens the cluster port, derives the security material, and
// starts gossip when the node may have peers.
func (n *Node) startNetwork(hasState bool) error {
	ln, err := net.Listen("tcp", n.cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", n.cfg.ClusterListen, err)
	}
	n.advertise, err = advertiseAddr(ln.Addr().(*net.TCPAddr), n.cfg.Advertise, n.cfg.clustered())
	if err != nil {
		ln.Close()
		return err
	}
	n.sec, err = newSecurity(n.cfg, identity{nodeID: n.id, host: n.advertise.IP.String()})
	if err != nil {
		ln.Close()
		return err
	}
	n.mux = newMux(ln, n.sec.serverTLS(), n.logger.With("component", "cluster-port"))
	n.peerClient = newPeerClient(n.sec.clientTLS(alpnHTTP2, alpnHTTP1))
	if n.cfg.GossipListen == "" || n.cfg.ClusterKey == "" {
		n.logger.Info("gossip disabled: lone node without a cluster key", "cluster_address", n.advertise.String())
		return nil
	}
	n.gossip, err = startGossip(gossipConfig{
		nodeID:        n.id,
		listen:        n.cfg.GossipListen,
		advertiseHost: n.gossipAdvertiseHost(),
		key:           n.sec.gossipKey,
		probeInterval: n.cfg.GossipProbeInterval,
		meta:          gossipMeta{Name: n.cfg.NodeName, ClusterAddr: n.advertise.String(), HasState: hasState},
		logger:        n.logger.With("component", "gossip"),
		stopping:      &n.stopping,
	})
	return err
}

// gossipAdvertiseHost is the IP gossip advertises: the configured one, or
// the cluster address's when the gossip listener is unspecified.
func (n *Node) gossipAdvertiseHost() string {
	host, _, err := net.SplitHostPort(n.cfg.GossipListen)
	if err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return ""
		}
	}
	return n.advertise.IP.String()
}

// peerCompressMinBytes: smaller PeerService answers are never compressed.
const peerCompressMinBytes = 64 << 10

// serveInternal mounts the peer service and serves the cluster port.
func (n *Node) serveInternal() {
	// Peers do not ask for compressed answers (see peerClients); older
	// ones did, for every message, however small.
	path, h := clusterpbconnect.NewPeerServiceHandler(peerService{n: n}, connect.WithCompressMinBytes(peerCompressMinBytes))
	n.internal.Handle(path, h)
	n.internalSrv = newInternalServer(n.internal, n.logger)
	go func() {
		if err := n.internalSrv.Serve(n.mux.http); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) {
			n.logger.Debug("internal HTTP server stopped", "error", err)
		}
	}()
	n.mux.start()
}

// advertiseAddr works out the cluster address peers use. advertise is a
// host or host:port; without a port the listener's is used. With no
// advertise and an unspecified listener IP, a clustered node advertises its
// private IP and a lone node 127.0.0.1.
func advertiseAddr(listener *net.TCPAddr, advertise string, clustered bool) (*net.TCPAddr, error) {
	host, port := advertise, listener.Port
	if h, p, err := net.SplitHostPort(advertise); err == nil {
		pn, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("advertise address %q: bad port", advertise)
		}
		host, port = h, pn
	}
	if host == "" {
		ip, err := defaultAdvertiseIP(listener.IP, clustered)
		if err != nil {
			return nil, err
		}
		return &net.TCPAddr{IP: ip, Port: port}, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("resolve advertise address %q: %w", advertise, err)
	}
	if addr.IP == nil || addr.IP.IsUnspecified() || addr.Port == 0 {
		return nil, errors.New("advertise address " + advertise + " is not reachable by peers")
	}
	return addr, nil
}

func defaultAdvertiseIP(listen net.IP, clustered bool) (net.IP, error) {
	if listen != nil && !listen.IsUnspecified() {
		return listen, nil
	}
	if !clustered {
		return net.IPv4(127, 0, 0, 1), nil
	}
	s, err := sockaddr.GetPrivateIP()
	if err != nil || s == "" {
		return nil, fmt.Errorf("no private IP to advertise (set Advertise): %v", err)
	}
	return net.ParseIP(s), nil
}
