// Package dashboard is Skiff's web dashboard, served by the api role
// under /dashboard/ on the API's own listener (docs/dashboard.md).
//
// It is a client of the API like the CLI, not a second way in. A user
// logs in with an API token; the token stays on the server, in a session
// kept in memory (session.go), and the browser holds only a random
// session ID in an HttpOnly, SameSite=Strict cookie. Every page is drawn
// on the server with html/template from answers of the JSON API, asked
// with that token through Config.Client, which the api role points at
// its own handler in process (client.NewHandler): each request goes
// through the API's routes, authentication and checks exactly as the
// CLI's do. Actions (scale, restart, rollback, config, maintenance) are
// plain HTML forms posted to the dashboard, which checks the session's
// CSRF token, makes the one API call the CLI would make, and redirects
// back with what happened (post/redirect/get); nothing acts on the store
// directly, so nothing bypasses the API's checks.
//
//	browser --form + CSRF--> dashboard --Bearer token--> API handler --> store
//	browser <--HTML, SVG---- dashboard <-----JSON------- API handler
//
// Charts are inline SVG drawn on the server from the metrics API
// (chart.go). The one live part, the log tail, is a stream of server-sent
// events that the dashboard fills from the API's logs route with
// follow=true (logs.go); a small script (static/dashboard.js) shows it,
// refreshes the processes and asks before big actions. A section whose
// API route is missing or has nothing yet (metrics before the first
// sample, usage without the metrics role) says "No data yet" instead of
// failing its page.
package dashboard
