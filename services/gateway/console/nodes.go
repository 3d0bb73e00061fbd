package console

import "net/http"

// nodeRoutes registers the nodes pages (to come).
func (c *Console) nodeRoutes(m *http.ServeMux) {}
