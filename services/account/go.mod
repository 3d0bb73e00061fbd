module github.com/cloister-cc/cloister/services/account

go 1.26.8
