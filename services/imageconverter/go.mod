module github.com/cloister-cc/cloister/services/imageconverter

go 1.26.8

replace github.com/cloister-cc/cloister/libs => ../../libs

replace github.com/cloister-cc/cloister/services/account => ../account

require (
	github.com/cloister-cc/cloister/libs v0.0.0
	github.com/cloister-cc/cloister/services/account v0.0.0
)

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/google/uuid v1.6.0 // indirect
)
