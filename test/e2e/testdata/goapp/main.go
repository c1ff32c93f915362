// A Go web app in the shape of Heroku's go-getting-started: gin, HTML
// templates, a static directory, the Heroku runtime metrics agent, and a
// Procfile naming the binary that the module path gives.
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
	_ "github.com/heroku/x/hmetrics/onload"
)

const greeting = "hello from go"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT is not set")
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Logger())
	r.LoadHTMLGlob("templates/*.tmpl.html")
	r.Static("/static", "static")
	r.GET("/", func(c *gin.Context) {
		c.HTML(http.StatusOK, "index.tmpl.html", gin.H{"Greeting": greeting, "Release": os.Getenv("SKIFF_RELEASE")})
	})
	log.Fatal(r.Run(":" + port))
}
