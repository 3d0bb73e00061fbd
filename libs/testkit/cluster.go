package testkit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is nats-servers with JetStream clustered over loopback, for
// tests of what Cloister promises on a cluster: nothing lost when a node
// dies. Each node accepts what a deployment's does (the identities of
// Bus with their roles' permissions, no anonymous client; a probe for the
// test itself, as StartNATS's have), and the nodes authenticate each other's
// routes with a password. Every route to a node passes through a proxy in
// front of it, which is the address the node advertises to its peers, so
// that a test can partition a node from the others while its clients stay
// connected to it. A node keeps its ports and its JetStream directory
// across Kill and Restart.
type Cluster struct {
	Identities
	Nodes []*ClusterNode

	t       testing.TB
	users   []*server.NkeyUser
	routePw string
	// proxies[j] carries every route to node j.
	proxies []*routeProxy

	mu       sync.Mutex
	isolated map[int]bool // partitioned nodes
}

// ClusterNode is one node of a Cluster.
type ClusterNode struct {
	// Name is the node's server name (n0, n1, ...).
	Name string
	// URL is where clients connect to it: the same across restarts.
	URL string

	mu          sync.Mutex
	server      *server.Server // nil while killed
	clientPort  int
	clusterPort int
	dir         string
}

// Server returns the node's running server, or nil while it is killed.
func (n *ClusterNode) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server
}

// clusterName is the name of every test cluster; a node refuses routes
// from another.
const clusterName = "cloister"

// StartCluster starts size nodes clustered with each other and waits
// until JetStream has a meta leader that every node knows. They are shut
// down when the test ends.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	if size < 1 {
		t.Fatalf("a cluster of %d nodes", size)
	}
	ids, users := newIdentities(t)
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	c := &Cluster{Identities: ids, t: t, users: users, routePw: hex.EncodeToString(pw), isolated: map[int]bool{}}
	for i := range size {
		port := FreePort(t)
		c.Nodes = append(c.Nodes, &ClusterNode{Name: fmt.Sprintf("n%d", i), URL: fmt.Sprintf("nats://127.0.0.1:%d", port),
			clientPort: port, clusterPort: FreePort(t), dir: t.TempDir()})
	}
	for j := range size {
		c.proxies = append(c.proxies, c.startRouteProxy(j))
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
		}
	})
	for i := range size {
		c.start(i)
	}
	c.WaitForMetaLeader(30 * time.Second)
	return c
}

// options are node i's server options: the same at every start.
func (c *Cluster) options(i int) *server.Options {
	n := c.Nodes[i]
	var routes []*url.URL
	for j, p := range c.proxies {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", User: url.UserPassword("route", c.routePw), Host: p.addr})
		}
	}
	return &server.Options{
		ServerName: n.Name,
		Host:       "127.0.0.1",
		Port:       n.clientPort,
		JetStream:  true,
		StoreDir:   n.dir,
		NoLog:      true,
		NoSigs:     true,
		Nkeys:      c.users,
		// Stop's lame duck mode: clients leave over a second, not two
		// minutes.
		LameDuckDuration:    time.Second,
		LameDuckGracePeriod: 100 * time.Millisecond,
		Cluster: server.ClusterOpts{
			Name: clusterName, Host: "127.0.0.1", Port: n.clusterPort,
			Username: "route", Password: c.routePw,
			// What peers told of this node (gossip) lead to its proxy
			// too: its own address would let routes bypass it.
			Advertise: c.proxies[i].addr,
		},
		Routes: routes,
	}
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	s, err := server.NewServer(c.options(i))
	if err != nil {
		c.t.Fatalf("starting %s: %v", n.Name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("%s did not become ready", n.Name)
	}
	n.mu.Lock()
	n.server = s
	n.mu.Unlock()
}

// Kill stops node i at once: its clients and routes are cut, its
// JetStream state is whatever it had written. Killing a killed node is
// harmless.
func (c *Cluster) Kill(i int) {
	if s := c.Nodes[i].take(); s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Stop stops node i as an operator upgrading it would: in lame duck mode,
// handing its leaderships to other nodes and closing its clients over a
// while so they move elsewhere.
func (c *Cluster) Stop(i int) {
	if s := c.Nodes[i].take(); s != nil {
		s.LameDuckShutdown()
		s.WaitForShutdown()
	}
}

// take returns the node's server, if it runs, and marks it stopped.
func (n *ClusterNode) take() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.server
	n.server = nil
	return s
}

// Restart starts node i again, on its ports and JetStream directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i].Server() != nil {
		c.t.Fatalf("restarting %s, which runs", c.Nodes[i].Name)
	}
	c.start(i)
}

// Partition cuts node i's routes to every other node, both ways, and
// keeps them cut until Heal: the node runs, and its clients stay
// connected to it, but it can reach no peer.
func (c *Cluster) Partition(i int) {
	c.mu.Lock()
	c.isolated[i] = true
	c.mu.Unlock()
	for _, p := range c.proxies {
		p.cutIsolated()
	}
}

// Heal lets node i's routes through again; the nodes reconnect them.
func (c *Cluster) Heal(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.isolated, i)
}

func (c *Cluster) partitioned(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isolated[i]
}

// nodeWithID returns the index of the running node whose server ID is
// id, or -1.
func (c *Cluster) nodeWithID(id string) int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.ID() == id {
			return i
		}
	}
	return -1
}

// NodeOf returns the index of the node nc is connected to, or -1 when it
// is connected to none now.
func (c *Cluster) NodeOf(nc *nats.Conn) int {
	return c.nodeWithID(nc.ConnectedServerId())
}

// routeProxy forwards the routes that nodes open to one node. It learns
// which node opened each from the route's first line, CONNECT, whose
// name is the server's ID, so that it can refuse and cut the routes of
// an isolated node while others pass.
type routeProxy struct {
	c      *Cluster
	to     int
	addr   string
	target string

	mu    sync.Mutex
	conns map[*routeConn]bool
}

type routeConn struct {
	// from is the server ID of the node that opened it: looked up when
	// needed, as a node's routes open before its Server is known.
	from         string
	client, node net.Conn
}

func (c *Cluster) startRouteProxy(to int) *routeProxy {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	p := &routeProxy{c: c, to: to, addr: ln.Addr().String(), target: fmt.Sprintf("127.0.0.1:%d", c.Nodes[to].clusterPort),
		conns: map[*routeConn]bool{}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(conn)
		}
	}()
	c.t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for rc := range p.conns {
			rc.close()
		}
	})
	return p
}

func (rc *routeConn) close() {
	_ = rc.client.Close()
	_ = rc.node.Close()
}

// allowed reports whether a route from the server whose ID is from to
// the proxy's node may pass now.
func (p *routeProxy) allowed(from string) bool {
	i := p.c.nodeWithID(from)
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return !p.c.isolated[p.to] && (i < 0 || !p.c.isolated[i])
}

func (p *routeProxy) forward(client net.Conn) {
	node, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	rc := &routeConn{client: client, node: node}
	// The node speaks first (INFO); the dialler answers with CONNECT.
	go func() { _, _ = io.Copy(client, node); rc.close() }()
	r := bufio.NewReader(client)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadBytes('\n')
	_ = client.SetReadDeadline(time.Time{})
	if err != nil {
		rc.close()
		return
	}
	var connect struct {
		Name string `json:"name"`
	}
	if rest, ok := bytes.CutPrefix(line, []byte("CONNECT ")); ok && json.Unmarshal(rest, &connect) == nil {
		rc.from = connect.Name
	}
	p.mu.Lock()
	if !p.allowed(rc.from) {
		p.mu.Unlock()
		rc.close()
		return
	}
	p.conns[rc] = true
	p.mu.Unlock()
	if _, err := node.Write(line); err == nil {
		_, _ = io.Copy(node, r)
	}
	rc.close()
	p.mu.Lock()
	delete(p.conns, rc)
	p.mu.Unlock()
}

// cutIsolated closes the routes that may no longer pass.
func (p *routeProxy) cutIsolated() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for rc := range p.conns {
		if !p.allowed(rc.from) {
			rc.close()
			delete(p.conns, rc)
		}
	}
}

// URLs are every node's client URL, comma-separated, for nats.Connect:
// a client so connected moves to another node when its own goes.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// urlsFrom is URLs with node i's first.
func (c *Cluster) urlsFrom(i int) string {
	urls := []string{c.Nodes[i].URL}
	for j, n := range c.Nodes {
		if j != i {
			urls = append(urls, n.URL)
		}
	}
	return strings.Join(urls, ",")
}

// clientOptions are how a test's clients connect to a cluster: to the
// node asked for first (not a random one), reconnecting elsewhere soon
// and without end.
func clientOptions() []nats.Option {
	return []nats.Option{nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
}

// Connect returns a connection of the test's probe (allowed everything)
// to node i first, knowing every node; it is closed when the test ends.
func (c *Cluster) Connect(t testing.TB, i int) *nats.Conn {
	t.Helper()
	nc, err := ConnectSeed(c.urlsFrom(i), c.ProbeSeed(), clientOptions()...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", c.Nodes[i].Name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ConnectAs returns a connection as role's identity, with its
// permissions, to node i first, knowing every node; it is closed when
// the test ends.
func (c *Cluster) ConnectAs(t testing.TB, role string, i int) *nats.Conn {
	t.Helper()
	id, ok := c.Bus[role]
	if !ok {
		t.Fatalf("no bus identity %q", role)
	}
	nc, err := nats.Connect(c.urlsFrom(i), append(id.Options(), clientOptions()...)...)
	if err != nil {
		t.Fatalf("connecting to %s as %s: %v", c.Nodes[i].Name, role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// MetaLeader returns the index of the node that leads JetStream's meta
// group, or -1 while none does (an election, a partition of the leader).
func (c *Cluster) MetaLeader() int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the node that leads stream (in the
// global account, where Cloister's streams are), or -1 while none does.
func (c *Cluster) StreamLeader(stream string) int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitForMetaLeader waits until a meta leader is elected and every
// running node that is not partitioned knows the meta group is current,
// and returns the leader's index.
func (c *Cluster) WaitForMetaLeader(within time.Duration) int {
	c.t.Helper()
	leader := -1
	EventuallyMsg(c.t, within, func() bool {
		if leader = c.MetaLeader(); leader < 0 {
			return false
		}
		for i, n := range c.Nodes {
			if s := n.Server(); s != nil && !c.partitioned(i) && !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("no JetStream meta leader that every node follows within %v", within)
	})
	return leader
}

// WaitForStreamLeader waits until stream has a leader and returns its
// index.
func (c *Cluster) WaitForStreamLeader(stream string, within time.Duration) int {
	c.t.Helper()
	leader := -1
	EventuallyMsg(c.t, within, func() bool { leader = c.StreamLeader(stream); return leader >= 0 },
		func() string { return fmt.Sprintf("stream %s has no leader within %v", stream, within) })
	return leader
}

// JetStream returns a probe connection to node i first and its JetStream
// context.
func (c *Cluster) JetStream(t testing.TB, i int) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := c.Connect(t, i)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}
