package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// appFlags are the flags of `app create` and `app update`, one per field
// of an application.
type appFlags struct {
	spec      api.AppSpec
	memory    string
	env       []string
	secretEnv []string
	volumes   []string
}

func (a *appFlags) register(f *pflag.FlagSet) {
	s := &a.spec
	f.StringVar(&s.Description, "description", "", "what the application is")
	f.StringVar(&s.InputImage, "input-image", "", "the image to convert, with its registry (registry.example.com/team/app:1)")
	f.StringVar(&s.OutputImage, "output-image", "", "repository for converted images, without tag (registry.example.com/team/app-sgx)")
	f.Uint32Var(&s.ISVProdID, "isvprodid", 0, "ISVPRODID, 0 to 65535")
	f.Uint32Var(&s.ISVSVN, "isvsvn", 0, "ISVSVN, 0 to 65535")
	f.StringVar(&a.memory, "memory", "", "enclave memory, a power of two, e.g. 256M or 2G (default 256M)")
	f.Uint32Var(&s.Threads, "threads", 0, "enclave threads, 1 to 256 (default 4)")
	f.StringArrayVar(&s.Entrypoint, "entrypoint", nil, "entrypoint, one flag per word (default: the image's)")
	f.StringArrayVar(&s.Args, "arg", nil, "an argument, one flag per argument")
	f.BoolVar(&s.AllowCmdlineArgs, "allow-cmdline-args", false, "let arguments given at run time replace --arg")
	f.StringArrayVar(&a.env, "env", nil, "NAME=VALUE, a fixed (measured) environment variable; repeat")
	f.StringArrayVar(&s.PassthroughEnv, "passthrough-env", nil, "NAME of a variable the host may pass through; repeat")
	f.StringArrayVar(&s.RWDirs, "rw-dir", nil, "a writable directory (not measured); repeat")
	f.BoolVar(&s.Debug, "debug", false, "a debug enclave (never for production: its memory can be read; measured, so a debug build has its own MRENCLAVE)")
	f.StringVar(&s.Certificate.Domain, "domain", "", "the DNS name the application serves (needs an approved domain task)")
	f.StringVar(&s.Certificate.Issuer, "issuer", "", "cloister (the account CA) or none (default: cloister with --domain)")
	f.StringVar(&s.Certificate.KeyType, "key-type", "", "rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384 (default ec-p256)")
	f.StringVar(&s.Certificate.KeyPath, "key-path", "", "where the enclave writes its private key (default /run/cloister/key.pem)")
	f.StringVar(&s.Certificate.CertPath, "cert-path", "", "where the enclave writes its certificate chain (default /run/cloister/cert.pem)")
	f.Uint32Var(&s.Certificate.ValidityDays, "validity-days", 0, "certificate lifetime in days (default: the CA's, 30)")
	f.StringVar(&s.SecretsDir, "secrets-dir", "", "where the enclave finds the app's secrets, one file each, in-enclave (default /run/cloister/secrets with --secret-env; see cloister secret)")
	f.StringArrayVar(&a.secretEnv, "secret-env", nil, "NAME=SECRET: also give the secret SECRET as the variable NAME; repeat")
	f.StringArrayVar(&a.volumes, "volume", nil, "PATH=KEY_NAME: an encrypted volume, its key kept by Cloister (its data is lost with the app); repeat")
}

// parse fills the parts of the spec that flags give as text.
func (a *appFlags) parse() error {
	if a.memory != "" {
		n, err := parseSize(a.memory)
		if err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		a.spec.MemorySize = n
	}
	for _, e := range a.env {
		name, value, ok := strings.Cut(e, "=")
		if !ok {
			return fmt.Errorf("--env %q: want NAME=VALUE", e)
		}
		a.spec.Env = append(a.spec.Env, api.EnvVar{Name: name, Value: value})
	}
	for _, e := range a.secretEnv {
		name, secret, ok := strings.Cut(e, "=")
		if !ok || name == "" || secret == "" {
			return fmt.Errorf("--secret-env %q: want NAME=SECRET", e)
		}
		a.spec.SecretEnv = append(a.spec.SecretEnv, api.SecretEnv{Name: name, Secret: secret})
	}
	for _, v := range a.volumes {
		p, key, ok := strings.Cut(v, "=")
		if !ok || p == "" || key == "" {
			return fmt.Errorf("--volume %q: want PATH=KEY_NAME", v)
		}
		a.spec.Volumes = append(a.spec.Volumes, api.Volume{Path: p, KeyName: key})
	}
	return nil
}

// patch is a JSON merge patch of exactly the flags given.
func (a *appFlags) patch(f *pflag.FlagSet, name string) map[string]any {
	s, p, cert := a.spec, map[string]any{}, map[string]any{}
	set := func(flag string, into map[string]any, key string, v any) {
		if f.Changed(flag) {
			into[key] = v
		}
	}
	if name != "" {
		p["name"] = name
	}
	set("description", p, "description", s.Description)
	set("input-image", p, "input_image", s.InputImage)
	set("output-image", p, "output_image", s.OutputImage)
	set("isvprodid", p, "isvprodid", s.ISVProdID)
	set("isvsvn", p, "isvsvn", s.ISVSVN)
	set("memory", p, "memory_size", s.MemorySize)
	set("threads", p, "threads", s.Threads)
	set("entrypoint", p, "entrypoint", s.Entrypoint)
	set("arg", p, "args", s.Args)
	set("allow-cmdline-args", p, "allow_cmdline_args", s.AllowCmdlineArgs)
	set("env", p, "env", s.Env)
	set("passthrough-env", p, "passthrough_env", s.PassthroughEnv)
	set("rw-dir", p, "rw_dirs", s.RWDirs)
	set("debug", p, "debug", s.Debug)
	set("domain", cert, "domain", s.Certificate.Domain)
	set("issuer", cert, "issuer", s.Certificate.Issuer)
	set("key-type", cert, "key_type", s.Certificate.KeyType)
	set("key-path", cert, "key_path", s.Certificate.KeyPath)
	set("cert-path", cert, "cert_path", s.Certificate.CertPath)
	set("validity-days", cert, "validity_days", s.Certificate.ValidityDays)
	set("secrets-dir", p, "secrets_dir", s.SecretsDir)
	set("secret-env", p, "secret_env", s.SecretEnv)
	set("volume", p, "volumes", s.Volumes)
	if len(cert) > 0 {
		p["certificate"] = cert
	}
	return p
}

// parseSize reads 256M, 256MiB, 2G, 2GiB (binary units) or plain bytes.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := uint64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size such as 256M or 2G", s)
	}
	return n * mult, nil
}

func formatSize(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	}
	return strconv.FormatUint(n, 10)
}

var appHeader = []string{"ID", "NAME", "INPUT IMAGE", "DOMAIN", "MEMORY", "THREADS"}

func appRows(as ...api.App) [][]string {
	rows := make([][]string, len(as))
	for i, a := range as {
		rows[i] = []string{a.ID, a.Name, a.InputImage, a.Certificate.Domain, formatSize(a.MemorySize), strconv.Itoa(int(a.Threads))}
	}
	return rows
}

// appDetail prints every field of an application, one per line.
func appDetail(a api.App) ([]string, [][]string) {
	env := make([]string, len(a.Env))
	for i, e := range a.Env {
		env[i] = e.Name + "=" + e.Value
	}
	secretEnv := make([]string, len(a.SecretEnv))
	for i, e := range a.SecretEnv {
		secretEnv[i] = e.Name + "=" + e.Secret
	}
	volumes := make([]string, len(a.Volumes))
	for i, v := range a.Volumes {
		volumes[i] = v.Path + "=" + v.KeyName
	}
	q := func(ss []string) string { return strings.Join(ss, " ") }
	return []string{"FIELD", "VALUE"}, [][]string{
		{"id", a.ID}, {"name", a.Name}, {"description", a.Description},
		{"input image", a.InputImage}, {"output image", a.OutputImage},
		{"isvprodid", strconv.Itoa(int(a.ISVProdID))}, {"isvsvn", strconv.Itoa(int(a.ISVSVN))},
		{"memory", formatSize(a.MemorySize)}, {"threads", strconv.Itoa(int(a.Threads))},
		{"entrypoint", q(a.Entrypoint)}, {"args", q(a.Args)}, {"run-time args", strconv.FormatBool(a.AllowCmdlineArgs)},
		{"env", q(env)}, {"passthrough env", q(a.PassthroughEnv)}, {"rw dirs", q(a.RWDirs)},
		{"debug", strconv.FormatBool(a.Debug)},
		{"domain", a.Certificate.Domain}, {"issuer", a.Certificate.Issuer}, {"key type", a.Certificate.KeyType},
		{"key path", a.Certificate.KeyPath}, {"cert path", a.Certificate.CertPath},
		{"validity days", strconv.Itoa(int(a.Certificate.ValidityDays))},
		{"secrets dir", a.SecretsDir}, {"secret env", q(secretEnv)}, {"volumes", q(volumes)},
	}
}

func (c *cli) appCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Manage the selected account's applications"}
	c.addAccountFlag(cmd)
	path := func(acct string, rest ...string) string {
		p := "/v1/accounts/" + url.PathEscape(acct) + "/apps"
		for _, r := range rest {
			p += "/" + url.PathEscape(r)
		}
		return p
	}

	var cf appFlags
	create := &cobra.Command{
		Use:   "create NAME --input-image REF --output-image REPO [flags]",
		Short: "Add an application",
		Example: `  cloister app create hello --input-image registry.example.com/samples/hello:1 \
    --output-image registry.example.com/samples/hello-sgx --memory 512M --threads 8 \
    --domain hello.example.com --env MODE=prod --rw-dir /tmp`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := cf.parse(); err != nil {
				return err
			}
			cf.spec.Name = args[0]
			var a api.App
			if err := c.client().do(cmd.Context(), "POST", path(acct), cf.spec, &a); err != nil {
				return err
			}
			return c.print(a, appHeader, appRows(a))
		},
	}
	cf.register(create.Flags())

	list := &cobra.Command{
		Use: "list", Short: "List the applications", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.App]
			if err := c.client().do(cmd.Context(), "GET", path(acct), nil, &l); err != nil {
				return err
			}
			return c.print(l, appHeader, appRows(l.Items...))
		},
	}

	show := &cobra.Command{
		Use: "show APP", Short: "Show every field of an application (by id or name)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var a api.App
			if err := c.client().do(cmd.Context(), "GET", path(acct, args[0]), nil, &a); err != nil {
				return err
			}
			header, rows := appDetail(a)
			return c.print(a, header, rows)
		},
	}

	var uf appFlags
	var rename string
	update := &cobra.Command{
		Use:   "update APP [flags]",
		Short: "Change the fields given as flags; the others keep their values",
		Example: `  cloister app update hello --memory 1G --key-type rsa-3072
  cloister app update hello --env MODE=prod --env LOG=debug   # replaces the whole env list`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := uf.parse(); err != nil {
				return err
			}
			patch := uf.patch(cmd.Flags(), rename)
			if len(patch) == 0 {
				return fmt.Errorf("nothing to change: give at least one flag (see --help)")
			}
			var a api.App
			if err := c.client().do(cmd.Context(), "PATCH", path(acct, args[0]), patch, &a); err != nil {
				return err
			}
			header, rows := appDetail(a)
			return c.print(a, header, rows)
		},
	}
	uf.register(update.Flags())
	update.Flags().StringVar(&rename, "name", "", "a new name")

	var yes bool
	del := &cobra.Command{
		Use:   "delete APP [--yes]",
		Short: "Delete an application; its certificates are revoked, its secrets and volume keys deleted",
		Long: `Delete an application: its images are forgotten, its certificates revoked, its
secrets and the keys of its encrypted volumes deleted. A volume's data cannot be
read without its key, so deleting an application that has volumes needs --yes
(export the keys first with cloister secret export-volume-key if the data must
outlive it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if !yes {
				var a api.App
				if err := c.client().do(cmd.Context(), "GET", path(acct, args[0]), nil, &a); err != nil {
					return err
				}
				if len(a.Volumes) > 0 {
					return fmt.Errorf("%s has %d encrypted volume(s), whose data is lost with their keys when it is deleted; pass --yes to confirm", args[0], len(a.Volumes))
				}
			}
			if err := c.client().do(cmd.Context(), "DELETE", path(acct, args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Deleted %s\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm deleting an application with encrypted volumes")
	cmd.AddCommand(create, list, show, update, del)
	return cmd
}

func (c *cli) signingKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signing-key",
		Short: "Show the selected account's enclave signing key (public half) and its MRSIGNER",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var k api.SigningKey
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/signing-key", nil, &k); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(k, nil, nil)
			}
			_, err = fmt.Fprintf(c.out, "MRSIGNER %s\n%s", k.MRSIGNER, k.PublicKeyPEM)
			return err
		},
	}
	c.addAccountFlag(cmd)
	return cmd
}
