// Command loadgen is a closed-loop HTTPS load generator that calls the webhook the way
// kube-apiserver's admission webhook client does (k8s.io/apiserver/pkg/util/webhook and
// k8s.io/client-go/transport, v1.33): one shared net/http Transport with TLS 1.2 as the
// minimum and no TLS session cache, 25 idle connections per host, 90 s idle timeout, a 10 s
// handshake timeout, gzip accepted; a POST of the compact JSON AdmissionReview to
// `<path>?timeout=10s` with Content-Type application/json, Accept "application/json, */*"
// and User-Agent kube-apiserver-admission, bounded by the webhook's 10 s timeout, whose
// answer is read whole and decoded. A webhook reached through a Service is called over
// HTTP/1.1 only (NextProtos http/1.1, issue 75791); one with a loopback `url` is offered
// HTTP/2 as well (`"http2": true` here).
//
//	loadgen '{"url":"https://127.0.0.1:8443/validate","bodyFile":"review.json",
//	  "caFile":"ca.crt","concurrency":10,"durationMs":2000,"warmupMs":500}'
//
// Options (one JSON argument, the same as bench/load.js): url (127.0.0.1 or ::1 only),
// bodyFile, caFile, concurrency, durationMs, maxRequests, warmupMs, keepAlive (default
// true; false = a new TLS connection per request), http2 (default false), rate (requests/s;
// default 0 = closed loop: each worker sends its next request when the last one answered). Prints one JSON
// line in bench/load.js's shape, plus the protocol spoken and the generator's own CPU.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	hardMaxRequests = 5_000_000
	hardMaxDuration = 120 * time.Second
	// kube-apiserver's default webhook timeoutSeconds; sent as ?timeout= like its REST client.
	webhookTimeout = 10 * time.Second
)

type options struct {
	URL         string  `json:"url"`
	BodyFile    string  `json:"bodyFile"`
	CAFile      string  `json:"caFile"`
	Concurrency int     `json:"concurrency"`
	DurationMs  float64 `json:"durationMs"`
	MaxRequests int64   `json:"maxRequests"`
	WarmupMs    float64 `json:"warmupMs"`
	KeepAlive   *bool   `json:"keepAlive"`
	HTTP2       bool    `json:"http2"`
	// Rate > 0: open loop. Requests are due every 1/Rate s whether or not earlier ones have
	// answered (as Secret writes reach the API server), sent by Concurrency workers, and each
	// latency counts from when the request was due, so a stall also delays the queue behind it.
	Rate float64 `json:"rate"`
}

type latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

type result struct {
	Requests       int64          `json:"requests"`
	WarmupRequests int64          `json:"warmupRequests"`
	Completed      int            `json:"completed"`
	Errors         int64          `json:"errors"`
	FirstError     string         `json:"firstError,omitempty"`
	Statuses       map[string]int `json:"statuses"`
	Seconds        float64        `json:"seconds"`
	RPS            float64        `json:"rps"`
	LatencyMs      latency        `json:"latencyMs"`
	Protocol       string         `json:"protocol"`
	// Connections opened in the whole run (warm-up included).
	Connections int64 `json:"connections"`
	// The generator's own CPU (user + system) per request and as a share of one core: near 1
	// means the generator, not the server, set the pace.
	ClientCPUMicrosPerRequest float64 `json:"clientCpuMicrosPerRequest"`
	ClientCPUShare            float64 `json:"clientCpuShare"`
}

// admissionReview is what the API server decodes from the answer (the parts it reads).
type admissionReview struct {
	Response *struct {
		UID     string `json:"uid"`
		Allowed bool   `json:"allowed"`
	} `json:"response"`
}

func parseOptions(raw string) (options, error) {
	opts := options{Concurrency: 1, DurationMs: 2000, MaxRequests: 1_000_000}
	if err := json.Unmarshal([]byte(raw), &opts); err != nil {
		return opts, fmt.Errorf("options: %w", err)
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return opts, fmt.Errorf("url: %w", err)
	}
	if host := u.Hostname(); host != "127.0.0.1" && host != "::1" {
		return opts, fmt.Errorf("loadgen only targets loopback (127.0.0.1 or ::1), got %s", host)
	}
	opts.Concurrency = max(1, min(1000, opts.Concurrency))
	opts.MaxRequests = min(hardMaxRequests, opts.MaxRequests)
	opts.DurationMs = min(float64(hardMaxDuration/time.Millisecond), opts.DurationMs)
	opts.WarmupMs = min(float64(hardMaxDuration/time.Millisecond), opts.WarmupMs)
	return opts, nil
}

// newTransport mirrors client-go's tlsTransportCache.get + utilnet.SetTransportDefaults for
// a webhook ClientConfig with a caBundle.
func newTransport(opts options) (*http.Transport, error) {
	pool := x509.NewCertPool()
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("caFile holds no PEM certificate")
		}
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if !opts.HTTP2 {
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     tlsConfig,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
		DisableKeepAlives:   opts.KeepAlive != nil && !*opts.KeepAlive,
		ForceAttemptHTTP2:   opts.HTTP2,
	}
	if opts.HTTP2 {
		// client-go's HTTP/2 health check (HTTP2_READ_IDLE_TIMEOUT_SECONDS, HTTP2_PING_TIMEOUT_SECONDS).
		transport.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	}
	return transport, nil
}

// dials counts the connections the transport opened: like the API server's client, it dials
// a new one whenever no idle connection is free at that moment, and keeps up to 25 idle.
var dials atomic.Int64

type phaseResult struct {
	latencies  []float64
	statuses   map[string]int
	errors     int64
	firstError string
	requests   int64
	protocol   string
}

type caller struct {
	client *http.Client
	target string
	body   []byte
}

// call sends one review and reads and decodes the whole answer; returns status and protocol.
func (c caller) call() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target, bytes.NewReader(c.body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	req.Header.Set("User-Agent", "kube-apiserver-admission")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Proto, err
	}
	if resp.StatusCode == http.StatusOK {
		var review admissionReview
		if err := json.Unmarshal(answer, &review); err != nil || review.Response == nil {
			return resp.StatusCode, resp.Proto, errors.New("the answer is not an AdmissionReview with a response")
		}
	}
	return resp.StatusCode, resp.Proto, nil
}

// schedule hands out due times: now (closed loop) or every 1/rate s from the start (open
// loop). ok is false once the phase is over.
type schedule struct {
	started     atomic.Int64
	maxRequests int64
	until       time.Time
	begin       time.Time
	interval    time.Duration
}

func (s *schedule) next() (time.Time, bool) {
	n := s.started.Add(1)
	if n > s.maxRequests {
		return time.Time{}, false
	}
	if s.interval == 0 {
		now := time.Now()
		return now, now.Before(s.until)
	}
	due := s.begin.Add(time.Duration(n-1) * s.interval)
	if !due.Before(s.until) {
		return due, false
	}
	// An idle worker sleeps until the request is due, and the runtime's timers wake it up to
	// a millisecond late: that delay is the generator's, so its latency counts from the
	// wake-up. A request due while every worker was busy counts from when it was due.
	if wait := time.Until(due); wait > 0 {
		time.Sleep(wait)
		return time.Now(), true
	}
	return due, true
}

func phase(c caller, concurrency int, sched *schedule, record bool) phaseResult {
	var mu sync.Mutex
	out := phaseResult{statuses: map[string]int{}}
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 4096)
			for {
				t0, ok := sched.next()
				if !ok {
					break
				}
				status, proto, err := c.call()
				elapsed := float64(time.Since(t0).Nanoseconds()) / 1e6
				mu.Lock()
				if err != nil {
					out.errors++
					if out.firstError == "" {
						out.firstError = err.Error()
					}
				} else {
					out.statuses[fmt.Sprint(status)]++
					if status != http.StatusOK {
						out.errors++
					}
					out.protocol = proto
				}
				mu.Unlock()
				if record && err == nil {
					local = append(local, elapsed)
				}
			}
			mu.Lock()
			out.latencies = append(out.latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.requests = min(sched.started.Load()-int64(concurrency), sched.maxRequests)
	return out
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	index := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, index))]
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}

func run(opts options) (result, error) {
	transport, err := newTransport(opts)
	if err != nil {
		return result{}, err
	}
	defer transport.CloseIdleConnections()
	body, err := os.ReadFile(opts.BodyFile)
	if err != nil {
		return result{}, err
	}
	target, _ := url.Parse(opts.URL)
	query := target.Query()
	query.Set("timeout", webhookTimeout.String())
	target.RawQuery = query.Encode()
	c := caller{client: &http.Client{Transport: transport}, target: target.String(), body: body}
	newSchedule := func(ms float64) *schedule {
		begin := time.Now()
		s := &schedule{maxRequests: opts.MaxRequests, begin: begin, until: begin.Add(time.Duration(ms * float64(time.Millisecond)))}
		if opts.Rate > 0 {
			s.interval = time.Duration(float64(time.Second) / opts.Rate)
		}
		return s
	}
	var warmup int64
	if opts.WarmupMs > 0 {
		warmup = phase(c, opts.Concurrency, newSchedule(opts.WarmupMs), false).requests
	}
	cpu0, t0 := cpuSeconds(), time.Now()
	measured := phase(c, opts.Concurrency, newSchedule(opts.DurationMs), true)
	seconds := time.Since(t0).Seconds()
	cpu := cpuSeconds() - cpu0
	sorted := measured.latencies
	sort.Float64s(sorted)
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	return result{
		Requests:                  measured.requests,
		WarmupRequests:            warmup,
		Completed:                 len(sorted),
		Errors:                    measured.errors,
		FirstError:                measured.firstError,
		Statuses:                  measured.statuses,
		Seconds:                   round3(seconds),
		RPS:                       round3(float64(measured.statuses["200"]) / seconds),
		Protocol:                  measured.protocol,
		Connections:               dials.Load(),
		ClientCPUMicrosPerRequest: round3(cpu * 1e6 / float64(max(1, measured.requests))),
		ClientCPUShare:            round3(cpu / seconds),
		LatencyMs: latency{
			Mean: round3(sum / float64(max(1, len(sorted)))),
			P50:  round3(quantile(sorted, 0.5)),
			P90:  round3(quantile(sorted, 0.9)),
			P99:  round3(quantile(sorted, 0.99)),
			Max:  round3(quantile(sorted, 1)),
		},
	}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, `usage: loadgen '{"url":…,"bodyFile":…}'`)
		os.Exit(2)
	}
	opts, err := parseOptions(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out, err := run(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
