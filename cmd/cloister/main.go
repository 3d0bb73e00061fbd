// Command cloister is Cloister's servers and its CLI in one binary:
// `cloister server` runs services, every other verb is a client of the
// gateway's REST API.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

func main() {
	root := newRootCmd()
	root.SetArgs(singleDashLongFlags(os.Args[1:]))
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errRefused) { // its result was printed already
			fmt.Fprintln(os.Stderr, "Error:", err)
		}
		os.Exit(1)
	}
}

// singleDashLongFlags accepts "-dev" as "--dev", the spelling that
// `vault server -dev` made familiar; pflag would read it as -d -e -v.
func singleDashLongFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "-dev" || strings.HasPrefix(a, "-dev=") {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}
