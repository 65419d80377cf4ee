// Spike: baseline, a sudden jump to SPIKE x the rate, and back. The gateway
// may push back (429/503 with Retry-After) during the spike, but must not
// fail otherwise, and must recover.
//   BASE_URL API_KEY RATE SPIKE (factor, default 5) DURATION (of each phase) BATCH
import { DURATION, RATE, ingest } from './lib/sluice.js';

const SPIKE = parseInt(__ENV.SPIKE || '5', 10);

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: RATE,
      timeUnit: '1s',
      preAllocatedVUs: 50,
      maxVUs: 500,
      stages: [
        { target: RATE, duration: DURATION },
        { target: RATE * SPIKE, duration: '5s' },
        { target: RATE * SPIKE, duration: DURATION },
        { target: RATE, duration: '5s' },
        { target: RATE, duration: DURATION },
      ],
    },
  },
  thresholds: {
    unexpected_answers: ['rate<0.001'],
    'http_req_duration{name:ingest}': ['p(99)<1000'],
  },
};

export default function () {
  ingest();
}
