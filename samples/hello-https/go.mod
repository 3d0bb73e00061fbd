module github.com/cloister-cc/cloister/samples/hello-https

go 1.26.8
