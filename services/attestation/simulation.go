package attestation

import (
	"errors"

	"github.com/cloister-cc/cloister/libs/sgx/sim"
)

// SimulatedQE makes a simulated quoting enclave for the account, under the deployment's
// simulation root, for a node agent in simulation mode (and tests).
func (s *Service) SimulatedQE(accountID string) (*sim.QE, error) {
	if s.sim == nil {
		return nil, errors.New("attestation: simulation is not enabled")
	}
	return s.sim.NewQE(s.clock(), accountID)
}
