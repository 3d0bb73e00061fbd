package account

import (
	"errors"

	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/password"
)

// Config is what the service needs to run.
type Config struct {
	service.Options
	// PasswordCost overrides the argon2id parameters (tests lower them).
	PasswordCost *PasswordCost
	// Clock overrides the time source (tests move it).
	Clock app.Clock
}

// PasswordCost is argon2id's memory (KiB), time and thread parameters.
type PasswordCost = password.Params

func (cfg *Config) check() error {
	if cfg.NATS == nil {
		return errors.New("account: a NATS connection is required")
	}
	return nil
}

func (cfg *Config) hasher() password.Argon2id {
	h := password.Argon2id{}
	if cfg.PasswordCost != nil {
		h.Params = *cfg.PasswordCost
	}
	return h
}
