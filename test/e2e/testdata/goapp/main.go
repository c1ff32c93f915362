package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/google/uuid"
)

const greeting = "hello from go"

func main() {
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("skiff"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s release=%s uuid=%s\n", greeting, os.Getenv("SKIFF_RELEASE"), id)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
