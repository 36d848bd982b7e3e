package consumer_test

import (
	"context"
	"fmt"
	"strings"

	"sluice/consumer"
)

// A backend decides a batch sale by sale, each in ledger order.
func ExampleBySale() {
	batch := []consumer.Order{
		{ID: "b-2", Sale: "boots", Seq: 2},
		{ID: "s-7", Sale: "socks", Seq: 7},
		{ID: "b-1", Sale: "boots", Seq: 1},
	}
	for _, group := range consumer.BySale(batch) {
		var ids []string
		for _, o := range group {
			ids = append(ids, o.ID)
		}
		fmt.Println(strings.Join(ids, " "))
	}
	// Output:
	// b-1 b-2
	// s-7
}

// A backend that makes one call per order (PacedEachCall) waits for the
// drain's pace before each; without a pace PaceOrder returns at once.
func ExamplePaceOrder() {
	calls := 0
	ctx := consumer.WithPace(context.Background(), func(context.Context) error {
		calls++ // the drain's pace: here, always ready
		return nil
	})
	for range 3 {
		if err := consumer.PaceOrder(ctx); err != nil {
			return
		}
	}
	fmt.Println(calls, consumer.PaceOrder(context.Background()))
	// Output: 3 <nil>
}
