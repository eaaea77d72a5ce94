package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/heraldhq/herald/client"
)

// The examples run against a real Herald that TestMain starts; in your
// backend, HERALD_URL and HERALD_API_KEY come from your configuration.

func ExampleClient_Publish() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"))
	id, err := c.Publish(context.Background(), client.Notification{
		Tenant: "acme",
		To:     client.ToUsers("alice", "bob"),
		Type:   "invoice.paid",
		Title:  "Invoice paid",
		Body:   "INV-1 was paid",
		Data:   map[string]any{"invoice": "INV-1", "amount": 42},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as a 26-character ULID:", len(id) == 26)
	// Output: stored as a 26-character ULID: true
}

func ExampleClient_Publish_audiences() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"))
	ctx := context.Background()
	// Everyone in the tenant, including users who connect for the first time later.
	_, err1 := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "maintenance",
		Title: "Down at 02:00 UTC", ExpiresAt: time.Now().Add(24 * time.Hour)})
	// Every user whose token has "role": "admin".
	_, err2 := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToRole("admin"), Type: "audit.alert",
		Title: "New admin login"})
	fmt.Println(err1, err2)
	// Output: <nil> <nil>
}

func ExampleIdempotencyKey() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"))
	n := client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "order.paid", Title: "Order 1234 paid"}
	// A key derived from the event: publishing it again (a redelivered
	// queue message, a restarted job) stores nothing new.
	first, _ := c.Publish(context.Background(), n, client.IdempotencyKey("order-1234-paid"))
	again, _ := c.Publish(context.Background(), n, client.IdempotencyKey("order-1234-paid"))
	fmt.Println("same notification:", first == again)
	// Output: same notification: true
}

func ExampleClient_PublishBatch() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"))
	ids, err := c.PublishBatch(context.Background(), []client.Notification{
		{Tenant: "acme", To: client.ToUsers("alice"), Type: "chat.message", Title: "Hi from Bob"},
		{Tenant: "acme", To: client.ToUsers("bob"), Type: "chat.message", Title: "Hi from Alice"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "stored in one transaction")
	// Output: 2 stored in one transaction
}

func ExampleError() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"))
	_, err := c.Publish(context.Background(), client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "no spaces allowed", Title: "x"})
	var herr *client.Error
	if errors.As(err, &herr) {
		// Log the correlation id: Herald's log line with the details has it too.
		fmt.Println(herr.Status, herr.Code, herr.Message, len(herr.CorrelationID))
	}
	// Output: 400 invalid_request invalid request 16
}

func ExampleClient_RevokeUser() {
	admin := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_ADMIN_KEY"))
	ctx := context.Background()
	// Alice's tokens issued before now are refused, and her live connections close (4004).
	if _, err := admin.RevokeUser(ctx, "acme", "alice"); err != nil {
		log.Fatal(err)
	}
	// Later, her old tokens work again.
	fmt.Println(admin.LiftUserRevocation(ctx, "acme", "alice"))
	// Output: <nil>
}

func ExampleClient_RevokeToken() {
	admin := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_ADMIN_KEY"))
	// A leaked token, by its jti claim, until its exp.
	_, err := admin.RevokeToken(context.Background(), "4f1c2a", time.Now().Add(time.Hour))
	fmt.Println(err)
	// Output: <nil>
}

func ExampleWithRetry() {
	c := client.New(os.Getenv("HERALD_URL"), os.Getenv("HERALD_API_KEY"),
		client.WithRetry(client.RetryPolicy{MaxAttempts: 6, MaxRetryAfter: 10 * time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds every retry
	defer cancel()
	_, err := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t", Title: "Hello"})
	fmt.Println(err)
	// Output: <nil>
}
