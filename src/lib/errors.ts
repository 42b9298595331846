// The small set of coded errors that Gatehouse's own routes, services and CLI
// raise. One error handler maps them to `{"error","message"}` with the status
// below 500 exposed; anything else is a bug and answers a bare 500.
export class CodedError extends Error {
  override name = 'CodedError';
  readonly code: string;
  readonly statusCode: number;

  constructor(code: string, message: string, statusCode = 400) {
    super(message);
    this.code = code;
    this.statusCode = statusCode;
  }
}

export function invalidInput(message: string): CodedError {
  return new CodedError('invalid_request', message, 400);
}
