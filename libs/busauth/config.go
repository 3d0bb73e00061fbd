package busauth

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"
)

// Config renders the nats-server authorization block for the public keys
// of the roles (name → public NKey): one user per role with its
// permissions, and no one else. nats.conf includes it.
func Config(keys map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString("# Cloister's NATS identities and what each may do; made by `cloister bus init`.\n")
	b.WriteString("# Only these users may connect: there is no anonymous access.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, r := range Roles {
		k, ok := keys[r.Name]
		if !ok {
			continue
		}
		if !nkeys.IsValidPublicUserKey(k) {
			return "", fmt.Errorf("the public NKey of %s (%q) is not a user key (U...)", r.Name, k)
		}
		p := r.Permissions()
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %s\n      permissions: {\n", r.Name, strconv.Quote(k))
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", list(p.Publish.Allow))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(p.Subscribe.Allow))
		fmt.Fprintf(&b, "        allow_responses: { max: %d }\n      }\n    }\n", p.Response.MaxMsgs)
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

// list quotes every subject: unquoted, nats.conf reads "$JS..." as a
// variable.
func list(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
