module github.com/cloister-cc/cloister/services/account

go 1.26.8

require github.com/cloister-cc/cloister/libs v0.0.0

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
)

replace github.com/cloister-cc/cloister/libs => ../../libs
