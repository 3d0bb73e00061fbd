module github.com/cloister-cc/cloister/cmd

go 1.26.8
