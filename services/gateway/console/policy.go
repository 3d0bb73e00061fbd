package console

import "net/http"

// policyRoutes registers the policy pages (to come).
func (c *Console) policyRoutes(m *http.ServeMux) {}
