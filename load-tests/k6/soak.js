// Soak: a moderate constant rate for a long time (default 30 minutes), to
// show that latency and memory stay flat.
//   BASE_URL API_KEY RATE DURATION (default 30m) BATCH EVENT_BYTES
import { ingest } from './lib/sluice.js';

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '20', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30m',
      preAllocatedVUs: 10,
      maxVUs: 100,
    },
  },
  thresholds: {
    unexpected_answers: ['rate<0.001'],
    pushed_back: ['rate<0.001'],
    'http_req_duration{name:ingest}': ['p(95)<50', 'p(99)<100'],
  },
};

export default function () {
  ingest();
}
