// Package skiff holds the nouns of the platform and the names they travel
// under on the bus. It imports nothing of the project; every role depends on
// it and on nothing else of each other.
//
// # State and its owners
//
// All platform state lives in JetStream key-value buckets (see names.go).
// Each record has one writer role, so that a conflict on a revision can only
// mean a concurrent change by the same kind of writer:
//
//	apps         App          api (create, destroy); scheduler (Current)
//	releases     Release      builder and api create them; scheduler sets Status
//	config       sealed vars  api
//	formation    Formation    api (scale, restart)
//	assignments  Assignment   scheduler: the desired instances, per node
//	instances    Instance     agent: the observed instances
//	nodes        Node         agent: heartbeats
//	domains      Domain       api: custom hostnames
//	tokens       Token        api
//
// # A deploy, as state changes
//
//	api/builder: Release{Status: pending}
//	scheduler:   Release{Status: deploying}; Assignment for every slot of it
//	agent:       Instance{State: starting} ... Instance{State: up}
//	scheduler:   every web slot up: App.Current = N, Release{Status: succeeded},
//	             assignments of the old release deleted
//	agent:       Instance{State: stopping}, drain, SIGTERM, record deleted
//	router:      routes follow App.Current and the up instances
//
// A release whose instances crash-loop or never come up within the boot
// timeout gets Status failed and its assignments are deleted; App.Current is
// untouched, so the previous release keeps serving.
package skiff
