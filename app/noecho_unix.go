//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package app

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readHidden writes prompt to prompts and reads one line from the terminal tty without echo.
// Echo goes off before the prompt is shown, so that nothing typed (or pasted) as soon as the
// prompt appears is ever echoed; it comes back on before readHidden returns.
func readHidden(tty *os.File, prompts io.Writer, prompt string) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return "", fmt.Errorf("read the terminal's settings: %w", err)
	}
	hidden := *old
	hidden.Lflag &^= unix.ECHO
	hidden.Lflag |= unix.ICANON | unix.ISIG
	hidden.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &hidden); err != nil {
		return "", fmt.Errorf("turn the terminal's echo off: %w", err)
	}
	defer func() { _ = unix.IoctlSetTermios(fd, ioctlSetTermios, old) }()
	fmt.Fprint(prompts, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(prompts) // the Enter the terminal did not echo
	if err != nil && line == "" {
		return "", fmt.Errorf("read the password from the terminal: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
