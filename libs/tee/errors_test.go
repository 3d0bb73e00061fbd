package tee_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cloister-cc/cloister/libs/tee"
)

func TestError(t *testing.T) {
	err := fmt.Errorf("verifying: %w", &tee.Error{TEE: tee.SEVSNP, Reason: tee.ReasonChain, Item: "VCEK certificate", Err: errors.New("unknown authority")})
	if got := err.Error(); got != "verifying: sev-snp: VCEK certificate: chain: unknown authority" {
		t.Errorf("Error() = %q", got)
	}
	for target, want := range map[*tee.Error]bool{
		{Reason: tee.ReasonChain}:                                            true,
		{TEE: tee.SEVSNP, Reason: tee.ReasonChain}:                           true,
		{TEE: tee.SEVSNP, Reason: tee.ReasonChain, Item: "VCEK certificate"}: true,
		{TEE: tee.SGX, Reason: tee.ReasonChain}:                              false,
		{Reason: tee.ReasonChain, Item: "ASK"}:                               false,
		{Reason: tee.ReasonExpired}:                                          false,
	} {
		if got := errors.Is(err, target); got != want {
			t.Errorf("errors.Is(err, %+v) = %v, want %v", *target, got, want)
		}
	}
	if tee.ReasonOf(err) != tee.ReasonChain || tee.ReasonOf(errors.New("other")) != "" {
		t.Error("ReasonOf does not find the reason")
	}
	if got := (&tee.Error{Reason: tee.ReasonDebug, Item: "report"}).Error(); got != "report: debug" {
		t.Errorf("without TEE and cause: %q", got)
	}
}
