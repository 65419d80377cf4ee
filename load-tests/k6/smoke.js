// Smoke: every main endpoint answers as documented, at a trickle.
//   BASE_URL QUERY_URL API_KEY (ingest+read scopes)
import http from 'k6/http';
import { check, sleep } from 'k6';
import { API_KEY, BASE_URL, QUERY_URL, batchBody, event } from './lib/sluice.js';

export const options = {
  vus: 1,
  iterations: 5,
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    http_req_duration: ['p(95)<500'],
  },
};

const auth = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };

export default function () {
  const one = http.post(`${BASE_URL}/v1/events`, JSON.stringify(event(0)), { headers: auth });
  check(one, { 'single event 202': (r) => r.status === 202 && r.json('event_id') !== undefined });

  const batch = http.post(`${BASE_URL}/v1/events/batch`, batchBody(10), { headers: auth });
  check(batch, { 'batch 202 with 10 accepted': (r) => r.status === 202 && r.json('accepted').length === 10 });

  const segment = http.post(`${BASE_URL}/v1/track`,
    JSON.stringify({ event: 'k6 smoke', userId: 'k6', messageId: `k6-smoke-${__ITER}-${Date.now()}` }),
    { headers: auth });
  check(segment, { 'segment track 200': (r) => r.status === 200 && r.json('success') === true });

  const ready = http.get(`${BASE_URL}/health/ready`);
  check(ready, { 'gateway ready': (r) => r.status === 200 });

  const events = http.get(`${QUERY_URL}/v1/events?limit=5`, { headers: { Authorization: `Bearer ${API_KEY}` } });
  check(events, { 'query API lists events': (r) => r.status === 200 && Array.isArray(r.json('events')) });
  sleep(0.2);
}
