/** Procedure numbers of the display's fd procedures (remote_protocol.x). */
export const GraphicsProc = {
  /** The client passes a socket in (CALL_WITH_FDS); svirt takes no fds from clients. */
  DomainOpenGraphics: 249,
  /** svirt passes the client's end of a socket pair out (REPLY_WITH_FDS). */
  DomainOpenGraphicsFd: 343,
} as const;
