package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// liveConn is the connection to the node agent that the application
// inherits: it must stay referenced until exec, or the garbage collector
// would close it.
var liveConn struct {
	conn net.Conn
	file *os.File
}

// holdLive opens the instance's live connection to the node agent (GET
// instances/{id}/live, whose answer never ends) and makes it survive
// exec, so that the application holds it: when the application's process
// ends, however it ends, the kernel closes it, and the agent reports the
// instance stopped. Under Gramine the enclave's exec keeps the descriptor
// the same way.
func (a *agentClient) holdLive(instanceID string) error {
	u := a.base.JoinPath("instances", url.PathEscape(instanceID), "live")
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	raw, err := net.DialTimeout("tcp", addr, agentTimeout)
	if err != nil {
		return fmt.Errorf("the node agent at %s cannot be reached (%v)", a.base, err)
	}
	conn := raw
	if u.Scheme == "https" {
		conn = tls.Client(raw, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
	}
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		raw.Close()
		return err
	}
	req.Header.Set("Accept", "text/plain")
	_ = conn.SetDeadline(time.Now().Add(agentTimeout))
	if err := req.Write(conn); err != nil {
		raw.Close()
		return fmt.Errorf("asking the node agent at %s to watch the instance: %v", a.base, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		raw.Close()
		return fmt.Errorf("the node agent at %s did not answer the live connection: %v", a.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		raw.Close()
		return fmt.Errorf("the node agent at %s refused the live connection: %s", a.base, resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	// A duplicate of the socket without close-on-exec: the one Go keeps
	// closes at exec, this one passes to the application.
	f, err := raw.(*net.TCPConn).File()
	if err != nil {
		raw.Close()
		return fmt.Errorf("keeping the live connection: %v", err)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFD, 0); errno != 0 {
		f.Close()
		raw.Close()
		return fmt.Errorf("keeping the live connection across exec: %v", errno)
	}
	liveConn.conn, liveConn.file = conn, f
	return nil
}
