// http-echo: the backend pods of the lab's end-to-end tests. Every request is answered with the pod's name
// (its hostname) and a newline, so a client sees which pod served it. Listens on $PORT (default 8080).
package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	name, err := os.Hostname()
	if err != nil {
		name = "unknown"
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	body := []byte(name + "\n")
	srv := &http.Server{
		Addr:              ":" + port,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
	}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
