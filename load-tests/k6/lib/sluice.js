// Shared pieces of the k6 suites: settings from the environment, event
// bodies of a given size, and the checks every ingest request must pass.
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const QUERY_URL = __ENV.QUERY_URL || 'http://127.0.0.1:8081';
export const API_KEY = __ENV.API_KEY || 'sluice-dev-key';
export const BATCH = parseInt(__ENV.BATCH || '100', 10);
export const EVENT_BYTES = parseInt(__ENV.EVENT_BYTES || '300', 10);
export const RATE = parseInt(__ENV.RATE || '50', 10); // requests per second
export const DURATION = __ENV.DURATION || '1m';

// Answers that are neither success nor back-pressure (429/503 with
// Retry-After are the gateway's correct answer to overload).
export const unexpected = new Rate('unexpected_answers');
// 429 and 503: how often the gateway pushed back.
export const pushedBack = new Rate('pushed_back');

http.setResponseCallback(http.expectedStatuses(200, 202, 207));

const TYPES = ['page_view', 'click', 'signup', 'checkout', 'search'];
const STATUSES = ['ok', 'ok', 'ok', 'error', 'timeout'];

// One event of about EVENT_BYTES as compact JSON; ids are unique per VU and
// iteration so retries and runs never collide.
export function event(i) {
  const id = `k6-${__VU}-${__ITER}-${i}-${Date.now()}`;
  const base = {
    event_id: id,
    type: TYPES[i % TYPES.length],
    timestamp: new Date().toISOString(),
    user_id: `user-${(__VU * 7919 + i) % 10000}`,
    session_id: `session-${__VU}-${Math.floor(__ITER / 10)}`,
    source: 'k6',
    duration_ms: Math.round(Math.random() * 5000) / 10,
    status: STATUSES[i % STATUSES.length],
    tags: ['load'],
    properties: { path: `/p/${i % 50}`, pad: '' },
  };
  const missing = EVENT_BYTES - JSON.stringify(base).length;
  base.properties.pad = 'x'.repeat(Math.max(0, missing));
  return base;
}

export function batchBody(size) {
  const events = [];
  for (let i = 0; i < size; i++) events.push(event(i));
  return JSON.stringify({ events });
}

const params = {
  headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
  tags: { name: 'ingest' },
};

// POSTs one batch (or one event when BATCH is 1) and records the outcome.
export function ingest() {
  const single = BATCH === 1;
  const url = single ? `${BASE_URL}/v1/events` : `${BASE_URL}/v1/events/batch`;
  const body = single ? JSON.stringify(event(0)) : batchBody(BATCH);
  const res = http.post(url, body, params);
  const backPressure = res.status === 429 || res.status === 503;
  pushedBack.add(backPressure);
  unexpected.add(!backPressure && ![200, 202, 207].includes(res.status));
  check(res, {
    'accepted': (r) => r.status === 202 || r.status === 200,
    'back-pressure carries Retry-After': (r) =>
      !(r.status === 429 || r.status === 503) || r.headers['Retry-After'] !== undefined,
  });
  return res;
}
