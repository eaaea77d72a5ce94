package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultSweepInterval is how often an engine sweeps expired notifications
// unless configured otherwise.
const DefaultSweepInterval = time.Minute

// sharedDefaults fills in the defaults of the settings every engine has:
// the clock (time.Now), the logger (discards) and the sweep interval.
func sharedDefaults(clock Clock, log *slog.Logger, sweep time.Duration) (Clock, *slog.Logger, time.Duration) {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if sweep == 0 {
		sweep = DefaultSweepInterval
	}
	return clock, log, sweep
}

// validateShared reports the errors in the settings every engine has (zero
// means the default, negative is an error).
func validateShared(batchMax, queueSize int, sweep time.Duration) []error {
	var errs []error
	if batchMax < 0 {
		errs = append(errs, fmt.Errorf("batch max %d < 0", batchMax))
	}
	if queueSize < 0 {
		errs = append(errs, fmt.Errorf("queue size %d < 0", queueSize))
	}
	if sweep < 0 {
		errs = append(errs, fmt.Errorf("sweep interval %v < 0", sweep))
	}
	return errs
}

// configError joins the errors of an engine's configuration, nil when
// there are none.
func configError(engine string, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: %s config: %w", engine, err)
	}
	return nil
}
