// Steady state: a constant arrival rate of batch requests.
//   BASE_URL API_KEY RATE (requests/s) DURATION BATCH EVENT_BYTES
import { API_KEY, DURATION, RATE, ingest } from './lib/sluice.js';

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '50', 10),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 20,
      maxVUs: 200,
    },
  },
  thresholds: {
    unexpected_answers: ['rate<0.001'],
    pushed_back: ['rate<0.01'],
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:ingest}': ['p(95)<50', 'p(99)<100'],
  },
};

export default function () {
  ingest();
}

export function setup() {
  if (!API_KEY) throw new Error('set API_KEY');
  return { rate: RATE };
}
