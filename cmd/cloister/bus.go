package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/busauth"
)

// Files `cloister bus init` writes besides the NATS identities.
const (
	redisPasswordFile = "redis.password"
	redisConfFile     = "redis.conf"
)

func busCmd() *cobra.Command {
	var forCompose bool
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Make a deployment's NATS identities, its nats-server authorization and a Redis password",
		Long: `Make the secrets a deployment's message bus runs with, in DIR (created, 0700):

  <service>.nk      the NATS identity (NKey seed) of each service and of the
                    gateway: give each process only its own, as
                    --nats-credentials DIR ($CLOISTER_NATS_CREDENTIALS)
  ` + busauth.AuthFile + `   the nats-server authorization: one user per identity with
                    only the permissions its role needs, and no anonymous
                    access; include it from nats.conf
  ` + busauth.RoutePasswordFile + `
                    the password NATS servers give each other on their
                    cluster routes (deployments/k8s/nats.yaml)
  assertion.key     the secret the gateway vouches for each caller with
                    (give it to the gateway alone)
  assertion-<service>.key
                    the key of the assertions addressed to one service,
                    derived from it (give each service its own)
  redis.password    Redis's password, for --redis-password-file
  redis.conf        the same, as Redis reads it (requirepass)

The identities are made once: DIR must not hold them already. The files
are readable by their owner only (0600), unless --compose says otherwise.
For Kubernetes, make Secrets of them (see deployments/k8s/README.md); for
docker compose, run it as 'cloister bus init --compose ./secrets' beside
docker-compose.yml.`,
		Example: "  cloister bus init --compose ./secrets",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			before, err := existingNames(dir)
			if err != nil {
				return err
			}
			c, err := busauth.NewCredentials()
			if err != nil {
				return err
			}
			if err := c.Write(dir); err != nil {
				return err
			}
			if err := writeRedisPassword(dir); err != nil {
				return err
			}
			if forCompose {
				if err := readableInPrivateDir(dir, before); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote the NATS identities of %v, %s, the route password, the assertion key and the Redis password to %s\n",
				busauth.RoleNames(), busauth.AuthFile, dir)
			return err
		},
	}
	initCmd.Flags().BoolVar(&forCompose, "compose", false,
		"make the files readable by any user (0644) in DIR, which is made private (0700): docker compose mounts file "+
			"secrets with their owner and mode on the host, and the services run as uid 65532")
	cmd := &cobra.Command{Use: "bus", Short: "The message bus's identities and permissions (deployments)"}
	// These commands read no CLI config.
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return nil }
	cmd.AddCommand(initCmd)
	return cmd
}

func writeRedisPassword(dir string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	for name, content := range map[string]string{
		redisPasswordFile: pw + "\n",
		redisConfFile:     "# Made by `cloister bus init`: clients must give this password.\nrequirepass " + pw + "\n",
	} {
		if err := busauth.WriteNew(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// existingNames are the names in dir, if it exists.
func existingNames(dir string) (map[string]bool, error) {
	names := map[string]bool{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return names, nil
	}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names, err
}

// readableInPrivateDir makes the files bus init wrote in dir (those not in
// before) readable by any user, and dir itself private: on the host only
// its owner reaches them, and a container running as another user can read
// the one it is given.
func readableInPrivateDir(dir string, before map[string]bool) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if before[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
