import { pino, type Logger } from 'pino';

/**
 * The worker's JSON logger: one line per event on stdout, fields first.
 * Variable values and secrets are never passed to it; the redact list is a
 * second line of defence for fields that might carry credentials.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'camunda-sandbox' },
      redact: {
        paths: ['password', 'token', 'authorization', '*.password', '*.token', '*.authorization'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
