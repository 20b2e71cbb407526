//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package app

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// readHidden writes prompt to prompts and reads one line from the terminal tty without echo.
func readHidden(tty *os.File, prompts io.Writer, prompt string) (string, error) {
	fmt.Fprint(prompts, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(prompts) // the Enter the terminal did not echo
	if err != nil {
		return "", fmt.Errorf("read the password from the terminal: %w", err)
	}
	return string(b), nil
}
