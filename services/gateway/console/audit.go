package console

import "net/http"

// auditRoutes registers the audit pages (to come).
func (c *Console) auditRoutes(m *http.ServeMux) {}
