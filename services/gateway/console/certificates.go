package console

import "net/http"

// certificateRoutes registers the certificates pages (to come).
func (c *Console) certificateRoutes(m *http.ServeMux) {}
