package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// cliConfig is what the CLI remembers between runs: the server, the
// session token and the selected account. It holds a secret, so it is
// written with mode 0600 in a 0700 directory.
type cliConfig struct {
	Addr    string `json:"addr,omitempty"`
	Token   string `json:"token,omitempty"`
	Account string `json:"account,omitempty"`
}

func configPath() (string, error) {
	if p := os.Getenv("CLOISTER_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory (set CLOISTER_CONFIG): %w", err)
	}
	return filepath.Join(dir, "cloister", "config.json"), nil
}

func loadConfig() (cliConfig, error) {
	var c cliConfig
	p, err := configPath()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading %s: %w", p, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading %s: %w (delete it and log in again)", p, err)
	}
	return c, nil
}

func saveConfig(c cliConfig) error {
	p, err := configPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // WriteFile keeps the mode of an existing file
		return err
	}
	return os.Rename(tmp, p)
}
