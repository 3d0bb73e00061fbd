// Command cloister is Cloister's servers and its CLI in one binary:
// `cloister server` runs services, every other verb is a client of the
// gateway's REST API.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
)

func main() {
	root := newRootCmd()
	root.SetArgs(serverconfig.SingleDashLongFlags(os.Args[1:]))
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errRefused) { // its result was printed already
			fmt.Fprintln(os.Stderr, "Error:", err)
		}
		os.Exit(1)
	}
}
