// Command sessions is a Fiber web server with login sessions on a tiered (memory over
// PostgreSQL) session store. Run it with no arguments to serve; "sessions help" lists the
// maintenance commands. Everything happens in app.Run, which the end-to-end tests call too.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber-template/sessions/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr, app.Hooks{})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, app.Name+":", err)
		os.Exit(1)
	}
}
