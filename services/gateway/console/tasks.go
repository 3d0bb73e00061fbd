package console

import "net/http"

// taskRoutes registers the tasks pages (to come).
func (c *Console) taskRoutes(m *http.ServeMux) {}
