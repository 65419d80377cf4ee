// Query mix: what dashboards ask of the query API, at a constant rate.
//   QUERY_URL API_KEY (read scope) RATE DURATION
import http from 'k6/http';
import { check } from 'k6';
import { API_KEY, DURATION, QUERY_URL, unexpected } from './lib/sluice.js';

export const options = {
  scenarios: {
    queries: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '20', 10),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 10,
      maxVUs: 100,
    },
  },
  thresholds: {
    unexpected_answers: ['rate<0.001'],
    'http_req_duration{name:events}': ['p(95)<300'],
    'http_req_duration{name:events_by_type}': ['p(95)<300'],
  },
};

const headers = { Authorization: `Bearer ${API_KEY}` };

export default function () {
  const queries = [
    ['events', `${QUERY_URL}/v1/events?limit=100`],
    ['events_by_type', `${QUERY_URL}/v1/events?type=page_view&limit=100`],
  ];
  const [name, url] = queries[__ITER % queries.length];
  const res = http.get(url, { headers, tags: { name } });
  unexpected.add(res.status !== 200);
  check(res, { 'query 200': (r) => r.status === 200 });
}
