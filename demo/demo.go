// Package demo generates realistic CRM traffic for `crmpulse serve --demo`:
// three teams in three offices working their own hours, people with
// different habits, a few who never touch the CRM, and an integration user
// nobody mapped. A new user sees a live report the moment the page opens.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/directory"
)

// Tenant and Source of the generated events.
const (
	Tenant = "demo"
	Source = "hubspot"
)

// liveRate is the whole company's events per second while its busiest
// office is at work: faster than life, so the page visibly moves.
const liveRate = 2.0

type team struct {
	name, office, zone string
	// mix weighs the entities this team works on.
	mix map[string]float64
	// start and end are the working hours, local time.
	start, end int
}

var teams = []team{
	{"Inside Sales", "London", "Europe/London", map[string]float64{crmpulse.Lead: 5, crmpulse.Contact: 3, crmpulse.Opportunity: 1}, 8, 17},
	{"Field Sales", "New York", "America/New_York", map[string]float64{crmpulse.Opportunity: 5, crmpulse.Account: 2, crmpulse.Contact: 1}, 8, 18},
	{"Customer Success", "Singapore", "Asia/Singapore", map[string]float64{crmpulse.Account: 4, crmpulse.Contact: 3, crmpulse.Opportunity: 1}, 9, 18},
}

var firstNames = []string{"Amara", "Bruno", "Chen", "Dalia", "Emeka", "Freya", "Goran", "Hana", "Ivo", "Jonas",
	"Keiko", "Lucía", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
	"Wen", "Ximena", "Yusuf", "Zofia", "Aiko", "Bilal", "Clara", "Diego"}
var lastNames = []string{"Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski",
	"Rahman", "Jensen", "Costa", "Ibrahim", "Schmidt", "Park", "Dubois", "Nakamura", "Rossi", "Andersen",
	"Mendes", "Volkov", "Adeyemi", "Fischer", "Laurent", "Yamada", "Herrera", "Sato", "Bauer", "Kim", "Nilsen", "Ortiz"}
var companies = []string{"Northwind", "Bluefin Logistics", "Cedar & Pine", "Helios Energy", "Kestrel Labs",
	"Lumen Health", "Marlow Foods", "Orbit Retail", "Quarry Stone", "Redwood Legal", "Solace Travel",
	"Tidewater Marine", "Umber Studios", "Vantage Metals", "Willow Finance", "Zephyr Air"}

// person is a generated CRM user with habits.
type person struct {
	crmpulse.Person
	userID string
	team   *team
	loc    *time.Location
	// perHour is how many changes the person makes in a working hour.
	perHour float64
	records map[string][]string
}

// Run fills an empty directory with the demo roster and four weeks of
// history, then appends live events to log until ctx is done. On a data
// directory that already holds people it only generates live traffic.
func Run(ctx context.Context, log crmpulse.Log, dir *directory.Directory, loc *time.Location, logger *slog.Logger) error {
	logger = logger.With("component", "demo")
	rng := rand.New(rand.NewPCG(42, 7))
	people := roster(rng)
	fresh := len(dir.People()) == 0
	if fresh {
		for _, p := range people {
			if p.Name == "" {
				continue // the integration user stays unmapped
			}
			if err := dir.Put(p.Person, time.Now()); err != nil {
				return err
			}
		}
		n, err := backfill(ctx, log, people, rng, time.Now())
		if err != nil {
			return err
		}
		logger.Info("demo roster and history loaded", "people", len(people), "events", n)
	}
	rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for {
		now := time.Now()
		weights, total := activity(people, now)
		wait := time.Duration(rng.ExpFloat64() / (liveRate * math.Max(total, 0.05)) * float64(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(wait, 5*time.Second)):
		}
		if total == 0 {
			continue
		}
		p := pick(rng, people, weights, total)
		e := p.change(rng, time.Now())
		if err := log.Append(ctx, []crmpulse.Event{e}); err != nil {
			logger.Warn("demo event not stored", "err", err)
		}
	}
}

// roster makes the demo people: ten a team, the last of each team's ten
// never touching the CRM, plus an unmapped integration user.
func roster(rng *rand.Rand) []*person {
	var people []*person
	for ti := range teams {
		t := &teams[ti]
		loc, err := time.LoadLocation(t.zone)
		if err != nil {
			loc = time.UTC
		}
		manager := ""
		for i := range 10 {
			n := ti*10 + i
			name := firstNames[n] + " " + lastNames[(n*7)%len(lastNames)]
			p := &person{userID: fmt.Sprint(2000100 + n), team: t, loc: loc, records: map[string][]string{}}
			p.Person = crmpulse.Person{ID: name, Name: name, Team: t.name, Office: t.office,
				Timezone: t.zone, Status: crmpulse.StatusActive, IDs: map[string]string{Source: p.userID}}
			if i == 0 {
				manager = name
			} else {
				p.Manager = manager
			}
			// Habits range from the rare updater to the CRM enthusiast.
			p.perHour = []float64{0.5, 1, 2, 3, 4, 6, 8, 10, 14, 0}[(i*3+ti)%9]
			if i == 9 {
				p.perHour = 0
			}
			people = append(people, p)
		}
	}
	integration := &person{userID: "2999999", team: &teams[0], loc: time.UTC, perHour: 1, records: map[string][]string{}}
	integration.Person = crmpulse.Person{ID: "integration"}
	return append(people, integration)
}

// activity weighs each person by how much they are working at now.
func activity(people []*person, now time.Time) ([]float64, float64) {
	weights := make([]float64, len(people))
	total := 0.0
	for i, p := range people {
		local := now.In(p.loc)
		w := p.perHour
		if !p.working(local) {
			w *= 0.05 // the odd evening update
		}
		weights[i] = w
		total += w
	}
	return weights, total / 60 // normalised so the busiest hours give about liveRate
}

func (p *person) working(local time.Time) bool {
	wd := local.Weekday()
	h := local.Hour()
	return wd != time.Saturday && wd != time.Sunday && h >= p.team.start && h < p.team.end
}

func pick(rng *rand.Rand, people []*person, weights []float64, total float64) *person {
	x := rng.Float64() * total * 60
	for i, w := range weights {
		if x -= w; x < 0 {
			return people[i]
		}
	}
	return people[len(people)-1]
}

// change makes the person's next change at the instant at: mostly updates
// of records they know, sometimes a new record.
func (p *person) change(rng *rand.Rand, at time.Time) crmpulse.Event {
	entity := weighted(rng, p.team.mix)
	known := p.records[entity]
	e := crmpulse.Event{Tenant: Tenant, Source: Source, User: p.userID, Entity: entity, At: at.UTC(), Origin: "CRM_UI"}
	if p.ID == "integration" {
		e.Origin = "API"
	}
	if len(known) == 0 || rng.Float64() < 0.3 {
		id := fmt.Sprintf("%d", 51000000000+rng.Int64N(1e9))
		p.records[entity] = append(known, id)
		e.Action, e.Record = crmpulse.Created, id
	} else {
		e.Action, e.Record = crmpulse.Updated, known[rng.IntN(len(known))]
		e.Fields = []string{[]string{"stage", "amount", "phone", "next_step", "owner", "status"}[rng.IntN(6)]}
		if rng.Float64() < 0.02 {
			e.Action, e.Fields = crmpulse.Deleted, nil
		}
	}
	e.RecordName = companies[int(hash(e.Record))%len(companies)] + " " + map[string]string{
		crmpulse.Lead: "lead", crmpulse.Contact: "contact", crmpulse.Opportunity: "renewal", crmpulse.Account: "account",
	}[entity]
	return e
}

func hash(s string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func weighted(rng *rand.Rand, mix map[string]float64) string {
	total := 0.0
	for _, w := range mix {
		total += w
	}
	x := rng.Float64() * total
	for _, e := range crmpulse.Entities {
		if x -= mix[e]; x < 0 {
			return e
		}
	}
	return crmpulse.Opportunity
}

// backfill appends four weeks of history up to now.
func backfill(ctx context.Context, log crmpulse.Log, people []*person, rng *rand.Rand, now time.Time) (int, error) {
	var batch []crmpulse.Event
	n := 0
	start := now.Add(-28 * 24 * time.Hour).Truncate(time.Hour)
	for hour := start; hour.Before(now); hour = hour.Add(time.Hour) {
		for _, p := range people {
			rate := p.perHour
			if !p.working(hour.In(p.loc)) {
				rate *= 0.05
			}
			for k := poisson(rng, rate); k > 0; k-- {
				at := hour.Add(time.Duration(rng.Int64N(int64(time.Hour))))
				if at.After(now) {
					continue
				}
				batch = append(batch, p.change(rng, at))
			}
		}
		if len(batch) >= 2000 {
			if err := log.Append(ctx, batch); err != nil {
				return n, err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	if err := log.Append(ctx, batch); err != nil {
		return n, err
	}
	return n + len(batch), nil
}

func poisson(rng *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
