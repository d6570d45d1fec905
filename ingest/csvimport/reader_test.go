package csvimport

import (
	"bytes"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

func testMapping(t testing.TB) *Mapping {
	t.Helper()
	m := &Mapping{Source: "crm", Timezone: "Europe/Madrid", Entity: "opportunity", Record: "id",
		Events: []EventColumn{{Action: crmpulse.Created, User: "agent", At: "opened"}, {Action: crmpulse.Updated, User: "agent", At: "closed"}}}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDatesAreMidnightInTheMappingZone(t *testing.T) {
	in := "id,agent,opened,closed\nA,Ana,2017-07-01,\n"
	var got []crmpulse.Event
	sum, err := ReadEvents(bytes.NewBufferString(in), testMapping(t), 10, func(e []crmpulse.Event) error {
		got = append(got, e...)
		return nil
	})
	if err != nil || sum.Events != 1 || len(got) != 1 {
		t.Fatalf("sum %+v err %v", sum, err)
	}
	if want := time.Date(2017, 6, 30, 22, 0, 0, 0, time.UTC); !got[0].At.Equal(want) {
		t.Errorf("at = %v, want %v (midnight in Madrid)", got[0].At, want)
	}
}

func TestBrokenRowsByLine(t *testing.T) {
	in := "id,agent,opened,closed\nA,Ana,2017-07-01,\n\"B,Ana,2017-07-01\nC,Ana,bad,\n"
	sum, err := ReadEvents(bytes.NewBufferString(in), testMapping(t), 10, func([]crmpulse.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Broken) != 1 || sum.Broken[0].Line != 3 {
		t.Errorf("broken = %+v, want line 3", sum.Broken)
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add("id,agent,opened,closed\nA,Ana,2017-07-01,2017-08-01\n")
	f.Add("id,agent,opened,closed\n\"A,Ana\n,,,\n")
	m := testMapping(f)
	f.Fuzz(func(t *testing.T, in string) {
		now := time.Now()
		ReadEvents(bytes.NewBufferString(in), m, 3, func(events []crmpulse.Event) error {
			for i := range events {
				if bad := events[i].Validate(now); len(bad) > 0 {
					t.Fatalf("emitted an invalid event: %+v", bad)
				}
			}
			return nil
		})
	})
}
