module github.com/cloister-cc/cloister/services/gateway

go 1.26.8
