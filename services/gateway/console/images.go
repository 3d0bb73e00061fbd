package console

import "net/http"

// imageRoutes registers the images pages (to come).
func (c *Console) imageRoutes(m *http.ServeMux) {}
