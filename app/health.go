package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func runHealth(ctx context.Context, e *cmdEnv, _ []string) error {
	return health(ctx, e.cfg, e.stdout)
}

// healthTimeout bounds the whole check; /readyz itself answers within its 2 s database check.
const healthTimeout = 5 * time.Second

// health asks the server running on this machine with the same configuration whether it is
// ready: GET /readyz on PORT, at HOST when that names one interface and at 127.0.0.1 otherwise.
// It returns nil on 200 and an error on anything else, so that `sessions health` exits 0 or 1
// and a container's HEALTHCHECK needs no curl in the image.
func health(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.Port == 0 {
		return fmt.Errorf("health: PORT=0 picks a port at random; set the PORT the server listens on")
	}
	host := cfg.Host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	// The server is local: never through an HTTP proxy from the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	answer := strings.Join(strings.Fields(string(body)), " ")
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d %s", url, resp.StatusCode, answer)
	}
	_, err = fmt.Fprintf(stdout, "%s: %s\n", url, answer)
	return err
}
