package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
)

// migrate applies, with goose, the pending migrations in dir of migrations
// (an engine's embedded tree) to db and logs each one applied. classifyErr
// is the engine's error classification; opts are the engine's own
// provider options.
func migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, migrations fs.FS, dir string,
	log *slog.Logger, classifyErr func(error) error, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	opts = append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithSlog(log)}, opts...)
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", classifyErr(err))
	}
	for _, r := range res {
		log.Info("store: migration applied", "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return nil
}
